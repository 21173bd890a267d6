//! `wasi:io/poll.poll`, refusing a list longer than the instance may hold resources, before
//! anything is lifted: otherwise one pollable repeated millions of times makes the host
//! allocate memory in proportion, for as long as the poll waits.

use crate::InstanceState;
use wasmtime::component::{Linker, Resource, WasmList};
use wasmtime_wasi::p2::DynPollable;
use wasmtime_wasi_io::bindings::wasi::io::poll::Host as _;

pub fn add_to_linker(linker: &mut Linker<InstanceState>) -> anyhow::Result<()> {
    linker.allow_shadowing(true);
    let mut poll = linker.instance("wasi:io/poll@0.2.12")?;
    poll.func_wrap_async(
        "poll",
        |mut store, (list,): (WasmList<Resource<DynPollable>>,)| {
            Box::new(async move {
                let most = store.data().table.max_capacity();
                if list.len() > most {
                    return Err(wasmtime::format_err!(
                        "poll was given {} pollables; an instance holds at most {most} resources",
                        list.len()
                    ));
                }
                let pollables = list
                    .iter(&mut store)?
                    .collect::<wasmtime::Result<Vec<_>>>()?;
                let ready = store.data_mut().table.poll(pollables).await?;
                Ok((ready,))
            })
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}
