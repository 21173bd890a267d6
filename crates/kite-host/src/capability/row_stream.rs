//! Rows a Spin 4 database function has read, handed to the guest in the shape its WIT gives
//! them: a stream of rows, and a future saying how the statement ended.

use wasmtime::component::{Accessor, FutureReader, HasData, Lift, Lower, StreamReader};

/// A stream of rows and the future of how the statement that read them ended.
pub(crate) type RowsAndEnd<R, E> = (StreamReader<R>, FutureReader<Result<(), E>>);

/// `rows` (read in full, within the interface's bound on a result) as a stream, and a
/// future that says the statement succeeded. Fails only if the instance's table is full.
pub(crate) fn rows_and_end<T, D, R, E>(
    accessor: &Accessor<T, D>,
    rows: Vec<R>,
) -> wasmtime::Result<RowsAndEnd<R, E>>
where
    T: 'static,
    D: HasData + ?Sized,
    R: Lower + Lift + Send + Sync + Unpin + 'static,
    E: Lower + Lift + Send + Sync + 'static,
{
    accessor.with(|mut access| {
        let rows = StreamReader::new(&mut access, rows)?;
        let ended = FutureReader::new(
            &mut access,
            std::future::ready(Ok::<_, wasmtime::Error>(Ok::<(), E>(()))),
        )?;
        Ok((rows, ended))
    })
}

/// Converts between two generations of one WIT variant or enum whose cases have the same
/// names and payloads (bindgen makes a type per interface version). `F` and `T` are the
/// source and target types, imported under those names where this is used.
macro_rules! same_cases {
    ($value:expr, unit: [$($unit:ident),* $(,)?], carry: [$($carry:ident),* $(,)?] $(, $rest:pat => $other:expr)* $(,)?) => {
        match $value {
            $(F::$unit => T::$unit,)*
            $(F::$carry(payload) => T::$carry(payload),)*
            $($rest => $other,)*
        }
    };
}
pub(crate) use same_cases;
