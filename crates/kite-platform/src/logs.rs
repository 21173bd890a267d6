//! Live log tails per app: every line logged while serving an app (inside its `app` span,
//! or carrying an `app` field, or an access line tagged with it) goes to the admin API's
//! watchers of that app only.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, LazyLock, RwLock};
use tokio::sync::broadcast;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

/// The name of the span a request to an app runs in; its field `app` names the app.
pub const APP_SPAN: &str = "app";

/// Lines a watcher may fall behind by before it misses some (and is told how many).
const BACKLOG: usize = 1024;

/// The watchers of each app's log.
#[derive(Default)]
pub struct LogHub {
    channels: RwLock<HashMap<Arc<str>, broadcast::Sender<Arc<str>>>>,
}

/// The one hub of the process (the log layer is set up before any app exists).
pub fn hub() -> &'static LogHub {
    static HUB: LazyLock<LogHub> = LazyLock::new(LogHub::default);
    &HUB
}

impl LogHub {
    /// A stream of `app`'s log lines from now on.
    pub fn subscribe(&self, app: &str) -> broadcast::Receiver<Arc<str>> {
        let mut channels = self.channels.write().unwrap_or_else(|p| p.into_inner());
        channels.retain(|_, sender| sender.receiver_count() > 0);
        channels
            .entry(app.into())
            .or_insert_with(|| broadcast::channel(BACKLOG).0)
            .subscribe()
    }

    /// Whether anyone watches `app` now.
    pub fn wants(&self, app: &str) -> bool {
        let channels = self.channels.read().unwrap_or_else(|p| p.into_inner());
        channels
            .get(app)
            .is_some_and(|sender| sender.receiver_count() > 0)
    }

    pub fn publish(&self, app: &str, line: String) {
        let channels = self.channels.read().unwrap_or_else(|p| p.into_inner());
        if let Some(sender) = channels.get(app) {
            let _ = sender.send(line.into());
        }
    }
}

impl kite_http::AccessTap for &'static LogHub {
    fn wants(&self, app: &str) -> bool {
        LogHub::wants(self, app)
    }

    fn line(&self, app: &str, line: String) {
        self.publish(app, line)
    }
}

/// Sends access lines of watched apps to the hub.
pub fn tap_access_log() {
    kite_http::set_access_tap(Box::new(hub()));
}

/// The app a span belongs to, kept in the span's extensions.
struct AppName(Arc<str>);

/// A `tracing` layer that copies events logged in an app's span to that app's watchers.
pub struct LogTail;

impl<S> Layer<S> for LogTail
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if attrs.metadata().name() != APP_SPAN {
            return;
        }
        let mut visitor = AppField(None);
        attrs.record(&mut visitor);
        if let (Some(name), Some(span)) = (visitor.0, ctx.span(id)) {
            span.extensions_mut().insert(AppName(name.into()));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                if let Some(AppName(app)) = span.extensions().get::<AppName>() {
                    if hub().wants(app) {
                        hub().publish(app, format_event(event));
                    }
                    return;
                }
            }
        }
        // Lines logged away from the request's task (a guest's output) name the app.
        let mut field = AppField(None);
        event.record(&mut field);
        if let Some(app) = field.0 {
            if hub().wants(&app) {
                hub().publish(&app, format_event(event));
            }
        }
    }
}

struct AppField(Option<String>);

impl Visit for AppField {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "app" {
            self.0 = Some(value.to_string());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "app" {
            self.0 = Some(format!("{value:?}"));
        }
    }
}

/// `<time> <LEVEL> <target>: <message> <field>=<value> ...`, like the log's own lines.
fn format_event(event: &Event<'_>) -> String {
    struct Fields {
        message: String,
        rest: String,
    }
    impl Visit for Fields {
        fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
            if field.name() == "message" {
                let _ = write!(self.message, "{value:?}");
            } else {
                let _ = write!(self.rest, " {}={value:?}", field.name());
            }
        }

        fn record_str(&mut self, field: &Field, value: &str) {
            if field.name() == "message" {
                self.message.push_str(value);
            } else {
                let _ = write!(self.rest, " {}={value}", field.name());
            }
        }
    }
    let mut fields = Fields {
        message: String::new(),
        rest: String::new(),
    };
    event.record(&mut fields);
    let metadata = event.metadata();
    // Guests choose parts of these lines (their output, names in their traps): control
    // characters are shown escaped, so a line stays one line and cannot drive a terminal.
    kite_host::escape_line(&format!(
        "{} {:>5} {}: {}{}",
        humantime::format_rfc3339_micros(std::time::SystemTime::now()),
        metadata.level(),
        metadata.target(),
        fields.message,
        fields.rest
    ))
}
