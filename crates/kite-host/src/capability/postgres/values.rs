//! Values between `spin:postgres@4` and PostgreSQL's binary format, by column type: what a
//! guest's parameter may be sent as, what a column's value becomes, and the errors.

use super::codec::{self, Reader};
use super::v4;
use bytes::{BufMut, BytesMut};
use std::error::Error as StdError;
use tokio_postgres::types::{FromSql, IsNull, ToSql, Type};

type BoxError = Box<dyn StdError + Sync + Send>;

/// A parameter that does not fit the statement's parameter type (the guest's mistake).
#[derive(Debug)]
struct ParamError(String);

impl std::fmt::Display for ParamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl StdError for ParamError {}

pub(crate) fn query_failed(e: tokio_postgres::Error) -> v4::Error {
    let Some(db) = e.as_db_error() else {
        return v4::Error::QueryFailed(v4::QueryError::Text(e.to_string()));
    };
    let extras = [
        ("column", db.column()),
        ("constraint", db.constraint()),
        ("table", db.table()),
        ("schema", db.schema()),
        ("datatype", db.datatype()),
        ("hint", db.hint()),
        ("where", db.where_()),
        ("routine", db.routine()),
    ]
    .into_iter()
    .filter_map(|(name, value)| value.map(|v| (name.to_string(), v.to_string())))
    .collect();
    v4::Error::QueryFailed(v4::QueryError::DbError(v4::DbError {
        as_text: db.to_string(),
        severity: db.severity().to_string(),
        code: db.code().code().to_string(),
        message: db.message().to_string(),
        detail: db.detail().map(str::to_string),
        extras,
    }))
}

/// A parameter that could not be sent is the guest's bad parameter; anything else failed.
pub(crate) fn bad_parameter_or_query_failed(e: tokio_postgres::Error) -> v4::Error {
    let mut source = e.source();
    while let Some(cause) = source {
        if let Some(ParamError(message)) = cause.downcast_ref::<ParamError>() {
            return v4::Error::BadParameter(message.clone());
        }
        source = cause.source();
    }
    query_failed(e)
}

pub(crate) fn columns(columns: &[tokio_postgres::Column]) -> Vec<v4::Column> {
    columns
        .iter()
        .map(|c| v4::Column {
            name: c.name().to_string(),
            data_type: data_type(c.type_()),
        })
        .collect()
}

fn data_type(ty: &Type) -> v4::DbDataType {
    use v4::DbDataType as D;
    match *ty {
        Type::BOOL => D::Boolean,
        Type::INT2 => D::Int16,
        Type::INT4 => D::Int32,
        Type::INT8 => D::Int64,
        Type::FLOAT4 => D::Floating32,
        Type::FLOAT8 => D::Floating64,
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN => D::Str,
        Type::BYTEA => D::Binary,
        Type::DATE => D::Date,
        Type::TIME => D::Time,
        Type::TIMESTAMP | Type::TIMESTAMPTZ => D::Datetime,
        Type::UUID => D::Uuid,
        Type::JSONB | Type::JSON => D::Jsonb,
        Type::NUMERIC => D::Decimal,
        Type::INT4_RANGE => D::RangeInt32,
        Type::INT8_RANGE => D::RangeInt64,
        Type::NUM_RANGE => D::RangeDecimal,
        Type::INT4_ARRAY => D::ArrayInt32,
        Type::INT8_ARRAY => D::ArrayInt64,
        Type::NUMERIC_ARRAY => D::ArrayDecimal,
        Type::TEXT_ARRAY | Type::VARCHAR_ARRAY | Type::BPCHAR_ARRAY => D::ArrayStr,
        Type::INTERVAL => D::Interval,
        _ => D::Other(ty.name().to_string()),
    }
}

/// One row's values and roughly how many bytes they hold.
pub(crate) fn row(row: &tokio_postgres::Row) -> Result<(Vec<v4::DbValue>, usize), v4::Error> {
    let mut values = Vec::with_capacity(row.len());
    let mut size = std::mem::size_of::<Vec<v4::DbValue>>();
    for i in 0..row.len() {
        let Decoded(value) = row
            .try_get(i)
            .map_err(|e| v4::Error::ValueConversionFailed(e.to_string()))?;
        size += value_size(&value);
        values.push(value);
    }
    Ok((values, size))
}

fn value_size(value: &v4::DbValue) -> usize {
    use v4::DbValue as V;
    let text = |items: &[Option<String>]| -> usize {
        items
            .iter()
            .map(|i| std::mem::size_of::<Option<String>>() + i.as_ref().map_or(0, String::len))
            .sum()
    };
    std::mem::size_of::<v4::DbValue>()
        + match value {
            V::Str(s) | V::Uuid(s) | V::Decimal(s) => s.len(),
            V::Binary(b) | V::Jsonb(b) | V::Unsupported(b) => b.len(),
            V::ArrayStr(items) | V::ArrayDecimal(items) => text(items),
            V::ArrayInt32(items) => 8 * items.len(),
            V::ArrayInt64(items) => 16 * items.len(),
            V::RangeDecimal((low, high)) => [low, high]
                .iter()
                .map(|bound| bound.as_ref().map_or(0, |(s, _)| s.len()))
                .sum(),
            _ => 0,
        }
}

/// A column's value, decoded by its type.
struct Decoded(v4::DbValue);

impl<'a> FromSql<'a> for Decoded {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        decode(ty, raw).map(Decoded).map_err(Into::into)
    }

    fn from_sql_null(_: &Type) -> Result<Self, BoxError> {
        Ok(Decoded(v4::DbValue::DbNull))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

fn decode(ty: &Type, raw: &[u8]) -> Result<v4::DbValue, String> {
    use v4::DbValue as V;
    let mut reader = Reader(raw);
    let text = |raw: &[u8]| {
        String::from_utf8(raw.to_vec()).map_err(|_| "text that is not UTF-8".to_string())
    };
    Ok(match *ty {
        Type::BOOL => V::Boolean(reader.u8()? != 0),
        Type::INT2 => V::Int16(reader.i16()?),
        Type::INT4 => V::Int32(reader.i32()?),
        Type::INT8 => V::Int64(reader.i64()?),
        Type::FLOAT4 => V::Floating32(f32::from_bits(reader.u32()?)),
        Type::FLOAT8 => V::Floating64(f64::from_bits(reader.i64()? as u64)),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN => {
            V::Str(text(raw)?)
        }
        Type::BYTEA => V::Binary(raw.to_vec()),
        Type::DATE => V::Date(codec::decode_date(reader.i32()?)),
        Type::TIME => V::Time(codec::decode_time(reader.i64()?)),
        Type::TIMESTAMP | Type::TIMESTAMPTZ => V::Datetime(codec::decode_datetime(reader.i64()?)),
        Type::UUID => V::Uuid(codec::decode_uuid(raw)?),
        Type::JSONB => V::Jsonb(raw.get(1..).unwrap_or_default().to_vec()),
        Type::JSON => V::Jsonb(raw.to_vec()),
        Type::NUMERIC => V::Decimal(codec::decode_numeric(raw)?),
        Type::INT4_RANGE => {
            let (lower, upper) = range(raw, |b| Reader(b).i32())?;
            V::RangeInt32((lower, upper))
        }
        Type::INT8_RANGE => {
            let (lower, upper) = range(raw, |b| Reader(b).i64())?;
            V::RangeInt64((lower, upper))
        }
        Type::NUM_RANGE => {
            let (lower, upper) = range(raw, codec::decode_numeric)?;
            V::RangeDecimal((lower, upper))
        }
        Type::INT4_ARRAY => V::ArrayInt32(array(raw, |b| Reader(b).i32())?),
        Type::INT8_ARRAY => V::ArrayInt64(array(raw, |b| Reader(b).i64())?),
        Type::NUMERIC_ARRAY => V::ArrayDecimal(array(raw, codec::decode_numeric)?),
        Type::TEXT_ARRAY | Type::VARCHAR_ARRAY | Type::BPCHAR_ARRAY => {
            V::ArrayStr(array(raw, text)?)
        }
        Type::INTERVAL => V::Interval(v4::Interval {
            micros: reader.i64()?,
            days: reader.i32()?,
            months: reader.i32()?,
        }),
        _ => V::Unsupported(raw.to_vec()),
    })
}

type Bound<T> = Option<(T, v4::RangeBoundKind)>;

fn range<T>(
    raw: &[u8],
    element: impl Fn(&[u8]) -> Result<T, String>,
) -> Result<(Bound<T>, Bound<T>), String> {
    let kind = |inclusive: bool| {
        if inclusive {
            v4::RangeBoundKind::Inclusive
        } else {
            v4::RangeBoundKind::Exclusive
        }
    };
    let bound = |b: codec::RawBound<'_>| -> Result<Bound<T>, String> {
        b.map(|(bytes, inclusive)| Ok((element(bytes)?, kind(inclusive))))
            .transpose()
    };
    match codec::decode_range(raw)? {
        // An empty range is sent as one with no bounds.
        None => Ok((None, None)),
        Some((lower, upper)) => Ok((bound(lower)?, bound(upper)?)),
    }
}

fn array<T>(
    raw: &[u8],
    element: impl Fn(&[u8]) -> Result<T, String>,
) -> Result<Vec<Option<T>>, String> {
    codec::decode_array(raw)?
        .into_iter()
        .map(|item| item.map(&element).transpose())
        .collect()
}

/// The guest's parameters, ready to send.
/// Roughly what a statement's parameters cost the host to hold.
pub(crate) fn parameters_size(values: &[v4::ParameterValue]) -> usize {
    use v4::ParameterValue as P;
    let text = |items: &[Option<String>]| {
        items
            .iter()
            .map(|s| 24 + s.as_ref().map_or(0, String::len))
            .sum()
    };
    values
        .iter()
        .map(|value| {
            std::mem::size_of::<v4::ParameterValue>()
                + match value {
                    P::Str(s) | P::Uuid(s) | P::Decimal(s) => s.len(),
                    P::Binary(b) | P::Jsonb(b) => b.len(),
                    P::ArrayInt32(a) => a.len() * 8,
                    P::ArrayInt64(a) => a.len() * 16,
                    P::ArrayDecimal(a) | P::ArrayStr(a) => text(a),
                    P::RangeDecimal((low, high)) => [low, high]
                        .iter()
                        .map(|b| b.as_ref().map_or(0, |(s, _)| s.len()))
                        .sum(),
                    _ => 0,
                }
        })
        .sum()
}

pub(crate) fn params(values: &[v4::ParameterValue]) -> Vec<Param<'_>> {
    values.iter().map(Param).collect()
}

/// One parameter, encoded for the type the statement gives it.
#[derive(Debug)]
pub(crate) struct Param<'a>(&'a v4::ParameterValue);

impl ToSql for Param<'_> {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        encode(self.0, ty, out).map_err(|message| Box::new(ParamError(message)) as BoxError)
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    tokio_postgres::types::to_sql_checked!();
}

fn encode(value: &v4::ParameterValue, ty: &Type, out: &mut BytesMut) -> Result<IsNull, String> {
    match encode_value(value, ty)? {
        None => Ok(IsNull::Yes),
        Some(bytes) => {
            out.put_slice(&bytes);
            Ok(IsNull::No)
        }
    }
}

/// `value` in the binary form of `ty`; `None` for SQL NULL.
fn encode_value(value: &v4::ParameterValue, ty: &Type) -> Result<Option<Vec<u8>>, String> {
    use v4::ParameterValue as P;
    let mismatch = || {
        format!(
            "a {} parameter cannot be sent as {}",
            variant(value),
            ty.name()
        )
    };
    let integer = |n: i64| -> Result<Vec<u8>, String> {
        let out_of_range = || format!("{n} does not fit the parameter's type {}", ty.name());
        Ok(match *ty {
            Type::INT2 => i16::try_from(n)
                .map_err(|_| out_of_range())?
                .to_be_bytes()
                .to_vec(),
            Type::INT4 => i32::try_from(n)
                .map_err(|_| out_of_range())?
                .to_be_bytes()
                .to_vec(),
            Type::INT8 => n.to_be_bytes().to_vec(),
            _ => return Err(mismatch()),
        })
    };
    let mut bytes = Vec::new();
    let mut out_bytes = |more: &[u8]| bytes.extend_from_slice(more);
    match (value, ty.clone()) {
        (P::DbNull, _) => return Ok(None),
        (P::Boolean(b), Type::BOOL) => out_bytes(&[u8::from(*b)]),
        (P::Int8(n), _) => out_bytes(&integer(i64::from(*n))?),
        (P::Int16(n), _) => out_bytes(&integer(i64::from(*n))?),
        (P::Int32(n), _) => out_bytes(&integer(i64::from(*n))?),
        (P::Int64(n), _) => out_bytes(&integer(*n)?),
        (P::Floating32(f), Type::FLOAT4) => out_bytes(&f.to_be_bytes()),
        (P::Floating32(f), Type::FLOAT8) => out_bytes(&f64::from(*f).to_be_bytes()),
        (P::Floating64(f), Type::FLOAT8) => out_bytes(&f.to_be_bytes()),
        (
            P::Str(s),
            Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN | Type::JSON,
        ) => out_bytes(s.as_bytes()),
        (P::Binary(b), Type::BYTEA) => out_bytes(b),
        (P::Date(d), Type::DATE) => out_bytes(&codec::encode_date(*d)?.to_be_bytes()),
        (P::Time(t), Type::TIME) => out_bytes(&codec::encode_time(*t)?.to_be_bytes()),
        (P::Datetime(d), Type::TIMESTAMP | Type::TIMESTAMPTZ) => {
            out_bytes(&codec::encode_datetime(*d)?.to_be_bytes())
        }
        (P::Timestamp(s), Type::TIMESTAMP | Type::TIMESTAMPTZ) => {
            out_bytes(&codec::encode_unix_seconds(*s)?.to_be_bytes())
        }
        (P::Uuid(u), Type::UUID) => out_bytes(&codec::encode_uuid(u)?),
        (P::Jsonb(j), Type::JSONB) => {
            out_bytes(&[1]);
            out_bytes(j);
        }
        (P::Jsonb(j), Type::JSON) => out_bytes(j),
        (P::Decimal(d), Type::NUMERIC) => out_bytes(&codec::encode_numeric(d)?),
        (P::RangeInt32((lower, upper)), Type::INT4_RANGE) => {
            out_bytes(&encode_range(lower, upper, |n| {
                Ok(n.to_be_bytes().to_vec())
            })?)
        }
        (P::RangeInt64((lower, upper)), Type::INT8_RANGE) => {
            out_bytes(&encode_range(lower, upper, |n| {
                Ok(n.to_be_bytes().to_vec())
            })?)
        }
        (P::RangeDecimal((lower, upper)), Type::NUM_RANGE) => {
            out_bytes(&encode_range(lower, upper, |d| codec::encode_numeric(d))?)
        }
        (P::ArrayInt32(items), Type::INT4_ARRAY) => {
            out_bytes(&encode_array(Type::INT4.oid(), items, |n| {
                Ok(n.to_be_bytes().to_vec())
            })?)
        }
        (P::ArrayInt64(items), Type::INT8_ARRAY) => {
            out_bytes(&encode_array(Type::INT8.oid(), items, |n| {
                Ok(n.to_be_bytes().to_vec())
            })?)
        }
        (P::ArrayDecimal(items), Type::NUMERIC_ARRAY) => {
            out_bytes(&encode_array(Type::NUMERIC.oid(), items, |d| {
                codec::encode_numeric(d)
            })?)
        }
        (P::ArrayStr(items), Type::TEXT_ARRAY | Type::VARCHAR_ARRAY | Type::BPCHAR_ARRAY) => {
            let element = match *ty {
                Type::VARCHAR_ARRAY => Type::VARCHAR.oid(),
                Type::BPCHAR_ARRAY => Type::BPCHAR.oid(),
                _ => Type::TEXT.oid(),
            };
            out_bytes(&encode_array(element, items, |s| {
                Ok(s.as_bytes().to_vec())
            })?)
        }
        (P::Interval(i), Type::INTERVAL) => {
            out_bytes(&i.micros.to_be_bytes());
            out_bytes(&i.days.to_be_bytes());
            out_bytes(&i.months.to_be_bytes());
        }
        _ => return Err(mismatch()),
    }
    Ok(Some(bytes))
}

fn encode_range<T>(
    lower: &Bound<T>,
    upper: &Bound<T>,
    element: impl Fn(&T) -> Result<Vec<u8>, String>,
) -> Result<Vec<u8>, String> {
    let bound = |b: &Bound<T>| -> Result<Option<(Vec<u8>, bool)>, String> {
        b.as_ref()
            .map(|(value, kind)| {
                Ok((
                    element(value)?,
                    matches!(kind, v4::RangeBoundKind::Inclusive),
                ))
            })
            .transpose()
    };
    Ok(codec::encode_range(bound(lower)?, bound(upper)?))
}

fn encode_array<T>(
    element_type: u32,
    items: &[Option<T>],
    element: impl Fn(&T) -> Result<Vec<u8>, String>,
) -> Result<Vec<u8>, String> {
    let elements = items
        .iter()
        .map(|item| item.as_ref().map(&element).transpose())
        .collect::<Result<Vec<_>, _>>()?;
    Ok(codec::encode_array(element_type, &elements))
}

fn variant(value: &v4::ParameterValue) -> &'static str {
    use v4::ParameterValue as P;
    match value {
        P::Boolean(_) => "boolean",
        P::Int8(_) => "int8",
        P::Int16(_) => "int16",
        P::Int32(_) => "int32",
        P::Int64(_) => "int64",
        P::Floating32(_) => "floating32",
        P::Floating64(_) => "floating64",
        P::Str(_) => "str",
        P::Binary(_) => "binary",
        P::Date(_) => "date",
        P::Time(_) => "time",
        P::Datetime(_) => "datetime",
        P::Timestamp(_) => "timestamp",
        P::Uuid(_) => "uuid",
        P::Jsonb(_) => "jsonb",
        P::Decimal(_) => "decimal",
        P::RangeInt32(_) => "range-int32",
        P::RangeInt64(_) => "range-int64",
        P::RangeDecimal(_) => "range-decimal",
        P::ArrayInt32(_) => "array-int32",
        P::ArrayInt64(_) => "array-int64",
        P::ArrayDecimal(_) => "array-decimal",
        P::ArrayStr(_) => "array-str",
        P::Interval(_) => "interval",
        P::DbNull => "db-null",
    }
}
