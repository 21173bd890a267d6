//! Rows a Spin 4 database function has read, handed to the guest in the shape its WIT gives
//! them: a stream of rows, and a future saying how the statement ended. The rows stay
//! counted against the instance's host memory until the guest has read or dropped them.

use crate::held_bytes::Held;
use std::pin::Pin;
use std::task::{Context, Poll};
use wasmtime::component::{
    Accessor, Destination, FutureReader, HasData, Lift, Lower, StreamProducer, StreamReader,
    StreamResult, VecBuffer,
};
use wasmtime::StoreContextMut;

/// A stream of rows and the future of how the statement that read them ended.
pub(crate) type RowsAndEnd<R, E> = (StreamReader<R>, FutureReader<Result<(), E>>);

/// `rows` (read in full, within the interface's bound on a result) as a stream, and a
/// future that says the statement succeeded; `held` counts the rows until they are read.
/// Fails only if the instance's table is full.
pub(crate) fn rows_and_end<T, D, R, E>(
    accessor: &Accessor<T, D>,
    rows: Vec<R>,
    held: Held,
) -> wasmtime::Result<RowsAndEnd<R, E>>
where
    T: 'static,
    D: HasData + ?Sized,
    R: Lower + Lift + Send + Sync + Unpin + 'static,
    E: Lower + Lift + Send + Sync + 'static,
{
    Ok((held_stream(accessor, rows, held)?, ended(accessor, Ok(()))?))
}

/// `items` as a stream, counted in `held` until the guest has read or dropped them.
pub(crate) fn held_stream<T, D, R>(
    accessor: &Accessor<T, D>,
    items: Vec<R>,
    held: Held,
) -> wasmtime::Result<StreamReader<R>>
where
    T: 'static,
    D: HasData + ?Sized,
    R: Lower + Lift + Send + Sync + Unpin + 'static,
{
    let items = HeldRows {
        rows: items.into_iter(),
        _held: held,
    };
    accessor.with(|mut access| StreamReader::new(&mut access, items))
}

/// A future already resolved to `how` (how an operation whose items went to a stream ended).
pub(crate) fn ended<T, D, E>(
    accessor: &Accessor<T, D>,
    how: Result<(), E>,
) -> wasmtime::Result<FutureReader<Result<(), E>>>
where
    T: 'static,
    D: HasData + ?Sized,
    E: Lower + Lift + Send + Sync + 'static,
{
    accessor.with(|mut access| {
        FutureReader::new(
            &mut access,
            std::future::ready(Ok::<_, wasmtime::Error>(how)),
        )
    })
}

/// Rows not yet read, given out as many at a time as the reader asks for, so that what
/// the host holds is what the hold counts.
struct HeldRows<R> {
    rows: std::vec::IntoIter<R>,
    _held: Held,
}

impl<R, D> StreamProducer<D> for HeldRows<R>
where
    R: Send + Sync + Unpin + 'static,
{
    type Item = R;
    type Buffer = VecBuffer<R>;

    fn poll_produce<'a>(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        store: StoreContextMut<'a, D>,
        mut destination: Destination<'a, R, VecBuffer<R>>,
        _: bool,
    ) -> Poll<wasmtime::Result<StreamResult>> {
        let this = self.get_mut();
        let wanted = destination.remaining(store).unwrap_or(1);
        let batch: Vec<R> = this.rows.by_ref().take(wanted).collect();
        destination.set_buffer(batch.into());
        Poll::Ready(Ok(if this.rows.len() == 0 {
            StreamResult::Dropped
        } else {
            StreamResult::Completed
        }))
    }
}
