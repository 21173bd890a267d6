//! The three interface versions over one implementation: version 4's values, narrowed for
//! version 3 (no uuid, json, decimal, ranges, arrays or intervals) and version 2 (neither
//! dates nor times; unsigned integers, which PostgreSQL lacks, refused).

use super::bindings::fermyon::spin::{postgres as v2, rdbms_types as v2_types};
use super::bindings::spin::postgres3_0_0::postgres as v3;
use super::{v4, PgConnection, PgView};
use crate::held_bytes::Held;
use wasmtime::component::Resource;

impl v4::Host for PgView<'_> {}

impl v4::HostConnection for PgView<'_> {
    async fn open(&mut self, address: String) -> Result<Resource<PgConnection>, v4::Error> {
        let connection = super::open(self.postgres, &address, &[]).await?;
        self.table
            .push(connection)
            .map_err(|_| v4::Error::ConnectionFailed("too many connections".into()))
    }

    async fn query(
        &mut self,
        connection: Resource<PgConnection>,
        statement: String,
        params: Vec<v4::ParameterValue>,
    ) -> Result<v4::RowSet, v4::Error> {
        super::query(
            super::client(self.table, &connection)?,
            &statement,
            params,
            &mut Held::alone(super::MAX_RESULT_BYTES),
        )
        .await
    }

    async fn execute(
        &mut self,
        connection: Resource<PgConnection>,
        statement: String,
        params: Vec<v4::ParameterValue>,
    ) -> Result<u64, v4::Error> {
        super::execute(super::client(self.table, &connection)?, &statement, params).await
    }

    async fn drop(&mut self, connection: Resource<PgConnection>) -> wasmtime::Result<()> {
        self.table.delete(connection)?;
        Ok(())
    }
}

impl v3::Host for PgView<'_> {}

impl v3::HostConnection for PgView<'_> {
    async fn open(&mut self, address: String) -> Result<Resource<PgConnection>, v3::Error> {
        v4::HostConnection::open(self, address)
            .await
            .map_err(v3_error)
    }

    async fn query(
        &mut self,
        connection: Resource<PgConnection>,
        statement: String,
        params: Vec<v3::ParameterValue>,
    ) -> Result<v3::RowSet, v3::Error> {
        let params = params.into_iter().map(v3_param).collect();
        let client = super::client(self.table, &connection).map_err(v3_error)?;
        let alone = &mut Held::alone(super::MAX_RESULT_BYTES);
        let rows = super::query(client, &statement, params, alone)
            .await
            .map_err(v3_error)?;
        Ok(v3::RowSet {
            columns: rows
                .columns
                .into_iter()
                .map(|c| v3::Column {
                    name: c.name,
                    data_type: v3_type(c.data_type),
                })
                .collect(),
            rows: rows
                .rows
                .into_iter()
                .map(|row| row.into_iter().map(v3_value).collect())
                .collect(),
        })
    }

    async fn execute(
        &mut self,
        connection: Resource<PgConnection>,
        statement: String,
        params: Vec<v3::ParameterValue>,
    ) -> Result<u64, v3::Error> {
        let params = params.into_iter().map(v3_param).collect();
        super::execute(
            super::client(self.table, &connection).map_err(v3_error)?,
            &statement,
            params,
        )
        .await
        .map_err(v3_error)
    }

    async fn drop(&mut self, connection: Resource<PgConnection>) -> wasmtime::Result<()> {
        self.table.delete(connection)?;
        Ok(())
    }
}

impl v2_types::Host for PgView<'_> {}

impl v2::Host for PgView<'_> {}

impl v2::HostConnection for PgView<'_> {
    async fn open(&mut self, address: String) -> Result<Resource<PgConnection>, v2_types::Error> {
        v4::HostConnection::open(self, address)
            .await
            .map_err(v2_error)
    }

    async fn query(
        &mut self,
        connection: Resource<PgConnection>,
        statement: String,
        params: Vec<v2_types::ParameterValue>,
    ) -> Result<v2_types::RowSet, v2_types::Error> {
        let params = params.into_iter().map(v2_param).collect::<Result<_, _>>()?;
        let client = super::client(self.table, &connection).map_err(v2_error)?;
        let alone = &mut Held::alone(super::MAX_RESULT_BYTES);
        let rows = super::query(client, &statement, params, alone)
            .await
            .map_err(v2_error)?;
        Ok(v2_types::RowSet {
            columns: rows
                .columns
                .into_iter()
                .map(|c| v2_types::Column {
                    name: c.name,
                    data_type: v2_type(c.data_type),
                })
                .collect(),
            rows: rows
                .rows
                .into_iter()
                .map(|row| row.into_iter().map(v2_value).collect())
                .collect(),
        })
    }

    async fn execute(
        &mut self,
        connection: Resource<PgConnection>,
        statement: String,
        params: Vec<v2_types::ParameterValue>,
    ) -> Result<u64, v2_types::Error> {
        let params = params.into_iter().map(v2_param).collect::<Result<_, _>>()?;
        super::execute(
            super::client(self.table, &connection).map_err(v2_error)?,
            &statement,
            params,
        )
        .await
        .map_err(v2_error)
    }

    async fn drop(&mut self, connection: Resource<PgConnection>) -> wasmtime::Result<()> {
        self.table.delete(connection)?;
        Ok(())
    }
}

fn error_text(error: v4::QueryError) -> String {
    match error {
        v4::QueryError::Text(text) => text,
        v4::QueryError::DbError(db) => db.as_text,
    }
}

fn v3_error(error: v4::Error) -> v3::Error {
    match error {
        v4::Error::ConnectionFailed(m) => v3::Error::ConnectionFailed(m),
        v4::Error::BadParameter(m) => v3::Error::BadParameter(m),
        v4::Error::QueryFailed(q) => v3::Error::QueryFailed(error_text(q)),
        v4::Error::ValueConversionFailed(m) => v3::Error::ValueConversionFailed(m),
        v4::Error::Other(m) => v3::Error::Other(m),
    }
}

fn v2_error(error: v4::Error) -> v2_types::Error {
    match error {
        v4::Error::ConnectionFailed(m) => v2_types::Error::ConnectionFailed(m),
        v4::Error::BadParameter(m) => v2_types::Error::BadParameter(m),
        v4::Error::QueryFailed(q) => v2_types::Error::QueryFailed(error_text(q)),
        v4::Error::ValueConversionFailed(m) => v2_types::Error::ValueConversionFailed(m),
        v4::Error::Other(m) => v2_types::Error::Other(m),
    }
}

fn v3_param(value: v3::ParameterValue) -> v4::ParameterValue {
    use v3::ParameterValue as P;
    use v4::ParameterValue as Q;
    match value {
        P::Boolean(b) => Q::Boolean(b),
        P::Int8(n) => Q::Int8(n),
        P::Int16(n) => Q::Int16(n),
        P::Int32(n) => Q::Int32(n),
        P::Int64(n) => Q::Int64(n),
        P::Floating32(f) => Q::Floating32(f),
        P::Floating64(f) => Q::Floating64(f),
        P::Str(s) => Q::Str(s),
        P::Binary(b) => Q::Binary(b),
        P::Date(d) => Q::Date(d),
        P::Time(t) => Q::Time(t),
        P::Datetime(d) => Q::Datetime(d),
        P::Timestamp(t) => Q::Timestamp(t),
        P::DbNull => Q::DbNull,
    }
}

fn v3_value(value: v4::DbValue) -> v3::DbValue {
    use v3::DbValue as P;
    use v4::DbValue as V;
    match value {
        V::Boolean(b) => P::Boolean(b),
        V::Int8(n) => P::Int8(n),
        V::Int16(n) => P::Int16(n),
        V::Int32(n) => P::Int32(n),
        V::Int64(n) => P::Int64(n),
        V::Floating32(f) => P::Floating32(f),
        V::Floating64(f) => P::Floating64(f),
        V::Str(s) => P::Str(s),
        V::Binary(b) => P::Binary(b),
        V::Date(d) => P::Date(d),
        V::Time(t) => P::Time(t),
        V::Datetime(d) => P::Datetime(d),
        V::DbNull => P::DbNull,
        _ => P::Unsupported,
    }
}

fn v3_type(ty: v4::DbDataType) -> v3::DbDataType {
    use v3::DbDataType as P;
    use v4::DbDataType as D;
    match ty {
        D::Boolean => P::Boolean,
        D::Int8 => P::Int8,
        D::Int16 => P::Int16,
        D::Int32 => P::Int32,
        D::Int64 => P::Int64,
        D::Floating32 => P::Floating32,
        D::Floating64 => P::Floating64,
        D::Str => P::Str,
        D::Binary => P::Binary,
        D::Date => P::Date,
        D::Time => P::Time,
        D::Datetime => P::Datetime,
        D::Timestamp => P::Timestamp,
        _ => P::Other,
    }
}

fn v2_param(value: v2_types::ParameterValue) -> Result<v4::ParameterValue, v2_types::Error> {
    use v2_types::ParameterValue as P;
    use v4::ParameterValue as Q;
    Ok(match value {
        P::Boolean(b) => Q::Boolean(b),
        P::Int8(n) => Q::Int8(n),
        P::Int16(n) => Q::Int16(n),
        P::Int32(n) => Q::Int32(n),
        P::Int64(n) => Q::Int64(n),
        P::Uint8(_) | P::Uint16(_) | P::Uint32(_) | P::Uint64(_) => {
            return Err(v2_types::Error::ValueConversionFailed(
                "Postgres does not support unsigned integers".into(),
            ))
        }
        P::Floating32(f) => Q::Floating32(f),
        P::Floating64(f) => Q::Floating64(f),
        P::Str(s) => Q::Str(s),
        P::Binary(b) => Q::Binary(b),
        P::DbNull => Q::DbNull,
    })
}

fn v2_value(value: v4::DbValue) -> v2_types::DbValue {
    use v2_types::DbValue as P;
    use v4::DbValue as V;
    match value {
        V::Boolean(b) => P::Boolean(b),
        V::Int8(n) => P::Int8(n),
        V::Int16(n) => P::Int16(n),
        V::Int32(n) => P::Int32(n),
        V::Int64(n) => P::Int64(n),
        V::Floating32(f) => P::Floating32(f),
        V::Floating64(f) => P::Floating64(f),
        V::Str(s) => P::Str(s),
        V::Binary(b) => P::Binary(b),
        V::DbNull => P::DbNull,
        _ => P::Unsupported,
    }
}

fn v2_type(ty: v4::DbDataType) -> v2_types::DbDataType {
    use v2_types::DbDataType as P;
    use v4::DbDataType as D;
    match ty {
        D::Boolean => P::Boolean,
        D::Int8 => P::Int8,
        D::Int16 => P::Int16,
        D::Int32 => P::Int32,
        D::Int64 => P::Int64,
        D::Floating32 => P::Floating32,
        D::Floating64 => P::Floating64,
        D::Str => P::Str,
        D::Binary => P::Binary,
        _ => P::Other,
    }
}
