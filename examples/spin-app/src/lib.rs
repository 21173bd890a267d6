//! A Spin app: routes inside one component with the SDK's router, a visit counter in the
//! default key-value store, and a greeting from an app variable.

use spin_sdk::http::{IntoResponse, Params, Request, Response, Router};
use spin_sdk::http_component;
use spin_sdk::key_value::Store;

#[http_component]
fn handle(request: Request) -> Response {
    let mut router = Router::new();
    router.get("/hello/:name", greet);
    router.get("/visits", visits);
    router.get("/where", where_am_i);
    router.any("/*", not_found);
    router.handle(request)
}

/// `GET /hello/:name`: the app's greeting for `name`.
fn greet(_request: Request, params: Params) -> anyhow::Result<impl IntoResponse> {
    let greeting = spin_sdk::variables::get("greeting")?;
    let name = params.get("name").unwrap_or("world");
    Ok(Response::new(200, format!("{greeting}, {name}!\n")))
}

/// `GET /visits`: counts the calls in the default store.
fn visits(_request: Request, _params: Params) -> anyhow::Result<impl IntoResponse> {
    let store = Store::open_default()?;
    let count = match store.get("visits")? {
        Some(bytes) => String::from_utf8(bytes)?.parse::<u64>()? + 1,
        None => 1,
    };
    store.set("visits", count.to_string().as_bytes())?;
    Ok(Response::new(200, format!("visits: {count}\n")))
}

/// `GET /where`: what the host told the component about its route.
fn where_am_i(request: Request, _params: Params) -> anyhow::Result<impl IntoResponse> {
    let header = |name: &str| {
        request
            .header(name)
            .and_then(|value| value.as_str())
            .unwrap_or("-")
            .to_string()
    };
    Ok(Response::new(
        200,
        format!(
            "full url: {}\nmatched route: {}\npath info: {}\n",
            header("spin-full-url"),
            header("spin-matched-route"),
            header("spin-path-info")
        ),
    ))
}

fn not_found(_request: Request, _params: Params) -> anyhow::Result<impl IntoResponse> {
    Ok(Response::new(404, "no such page\n"))
}
