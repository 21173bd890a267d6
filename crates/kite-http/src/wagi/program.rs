//! What a Wagi route runs: a WASI preview 1 core module (an exported function, `_start` by
//! default) or a WASI 0.2 command component (`wasi:cli/run`); and running one within the
//! request's deadline, stopped early when its request body fails or its client goes away.

use crate::failure::GuestFailure;
use crate::wasi_http::HandlerOutcome;
use kite_host::{CgiState, InstanceState};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use wasmtime::{InstancePre, Store, UpdateDeadline};
use wasmtime_wasi::p2::bindings::CommandPre;

#[derive(Clone)]
pub(crate) enum Program {
    Module(InstancePre<CgiState>),
    Command(CommandPre<InstanceState>),
}

/// A run's state, of the kind its program takes.
pub(crate) enum RunState {
    Module(CgiState),
    Command(InstanceState),
}

/// How a run is bounded: its deadline (and the timeout it came from, for messages), a
/// signal that its request body failed, and the slot its outcome goes to (closed when
/// nobody waits for it any more).
pub(crate) struct Bounds<'a> {
    pub deadline: tokio::time::Instant,
    pub timeout: Duration,
    /// Receives a message if the request body failed; closed when the body ended well.
    pub body_failure: mpsc::Receiver<()>,
    pub done: &'a mut oneshot::Sender<HandlerOutcome>,
}

impl Program {
    /// Runs the program in a fresh store; the store (and so the program's stdout) is gone
    /// when this returns.
    pub(crate) async fn run(
        &self,
        engine: &wasmtime::Engine,
        state: RunState,
        entrypoint: &str,
        bounds: Bounds<'_>,
    ) -> HandlerOutcome {
        match (self, state) {
            (Program::Module(pre), RunState::Module(state)) => {
                let mut store = Store::new(engine, state);
                store.limiter(|state| state.limits());
                bound_store(&mut store, |state| state.past_deadline());
                store.data_mut().set_deadline(bounds.deadline.into_std());
                let run = async {
                    let instance = pre.instantiate_async(&mut store).await?;
                    let entry = instance.get_typed_func::<(), ()>(&mut store, entrypoint)?;
                    entry.call_async(&mut store, ()).await
                };
                supervise(run, bounds).await
            }
            (Program::Command(pre), RunState::Command(state)) => {
                let mut store = Store::new(engine, state);
                store.limiter(|state| state.limits());
                bound_store(&mut store, |state| state.past_deadline());
                store.data_mut().set_deadline(bounds.deadline.into_std());
                let run = async {
                    let command = pre.instantiate_async(&mut store).await?;
                    match command.wasi_cli_run().call_run(&mut store).await? {
                        Ok(()) => Ok(()),
                        Err(()) => Err(wasmtime::Error::new(wasmtime_wasi::I32Exit(1))),
                    }
                };
                supervise(run, bounds).await
            }
            _ => Err(GuestFailure::Trap(wasmtime::Error::msg(
                "a run's state does not match its program",
            ))),
        }
    }
}

/// Host-call byte budget and the epoch callback that stops guest code at the deadline.
fn bound_store<T: 'static>(store: &mut Store<T>, past_deadline: fn(&T) -> bool) {
    store.set_hostcall_fuel(kite_host::host_budget::MAX_BYTES_PER_HOST_CALL);
    store.epoch_deadline_callback(move |store| {
        Ok(if past_deadline(store.data()) {
            UpdateDeadline::Interrupt
        } else {
            UpdateDeadline::Yield(1)
        })
    });
    store.set_epoch_deadline(1);
}

async fn supervise(
    run: impl std::future::Future<Output = wasmtime::Result<()>>,
    bounds: Bounds<'_>,
) -> HandlerOutcome {
    let Bounds {
        deadline,
        timeout,
        mut body_failure,
        done,
    } = bounds;
    let body_failed = async {
        // Only a sent message counts; a closed channel means the body ended well.
        if body_failure.recv().await.is_none() {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        ran = tokio::time::timeout_at(deadline, run) => match ran {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => match GuestFailure::from_error(e, timeout) {
                GuestFailure::Exit(0) => Ok(()),
                failure => Err(failure),
            },
            Err(_) => Err(GuestFailure::Deadline(timeout)),
        },
        () = body_failed => Err(GuestFailure::BodyFailed),
        () = done.closed() => Err(GuestFailure::Abandoned),
    }
}
