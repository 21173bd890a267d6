/* A CGI program in C: prints its CGI environment and the request body as a small page.
 * No SDK, just printf. Build: see the Makefile (Debian's clang and wasi-libc). */
#include <stdio.h>
#include <stdlib.h>

extern char **environ;

/* Writes `text` made safe for HTML. */
static void escaped(const char *text) {
    for (const char *c = text; *c; c++) {
        switch (*c) {
        case '&': fputs("&amp;", stdout); break;
        case '<': fputs("&lt;", stdout); break;
        case '>': fputs("&gt;", stdout); break;
        case '"': fputs("&quot;", stdout); break;
        default: putchar(*c);
        }
    }
}

int main(int argc, char **argv) {
    const char *method = getenv("REQUEST_METHOD");
    const char *path = getenv("PATH_INFO");

    printf("Content-Type: text/html; charset=utf-8\n\n");
    printf("<!doctype html><title>Wagi in C</title>\n<h1>Hello from C</h1>\n<p>");
    escaped(method ? method : "?");
    printf(" ");
    escaped(path ? path : "");
    printf("</p>\n<h2>Environment</h2><ul>\n");
    for (char **var = environ; *var; var++) {
        printf("<li><code>");
        escaped(*var);
        printf("</code></li>\n");
    }
    printf("</ul><h2>Arguments</h2><ul>\n");
    for (int i = 0; i < argc; i++) {
        printf("<li><code>");
        escaped(argv[i]);
        printf("</code></li>\n");
    }
    printf("</ul><h2>Body</h2><pre>");
    char buffer[4096];
    size_t n, total = 0;
    while ((n = fread(buffer, 1, sizeof buffer - 1, stdin)) > 0) {
        buffer[n] = '\0';
        escaped(buffer);
        total += n;
    }
    printf("</pre><p>%zu bytes</p>\n", total);
    return 0;
}
