//! The two database engines behind one small interface: SQLite (the
//! embedded default, a file) and PostgreSQL (a shared server, a
//! `postgres://` URL). The store writes each statement once, in SQLite's
//! dialect with `?N` placeholders; [`pg_sql`] turns it into PostgreSQL's.
//! Values travel as [`Value`] (integer, real, text or NULL) because the two
//! drivers type parameters differently (PostgreSQL is strict: a BIGINT
//! column takes an `i64`, never a `u32`), so every integer column is BIGINT
//! there and every value an `i64`, `f64` or `String` here.

/// One value of a parameter or a result column.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    /// An integer (booleans as 0 and 1), or NULL.
    Int(Option<i64>),
    /// A real, or NULL.
    Real(Option<f64>),
    /// Text, or NULL.
    Text(Option<String>),
}

impl Value {
    pub(crate) fn int(&self) -> Option<i64> {
        match self {
            Value::Int(x) => *x,
            Value::Real(x) => x.map(|x| x as i64),
            Value::Text(t) => t.as_deref().and_then(|t| t.parse().ok()),
        }
    }
    /// Integers read as reals too: SQLite returns `COALESCE(x, 0)` as an integer.
    pub(crate) fn real(&self) -> Option<f64> {
        match self {
            Value::Int(x) => x.map(|x| x as f64),
            Value::Real(x) => *x,
            Value::Text(t) => t.as_deref().and_then(|t| t.parse().ok()),
        }
    }
    pub(crate) fn text(&self) -> Option<String> {
        match self {
            Value::Text(t) => t.clone(),
            Value::Int(x) => x.map(|x| x.to_string()),
            Value::Real(x) => x.map(|x| x.to_string()),
        }
    }
    pub(crate) fn json(&self) -> serde_json::Value {
        match self {
            Value::Int(Some(x)) => (*x).into(),
            Value::Real(Some(x)) => (*x).into(),
            Value::Text(Some(t)) => t.clone().into(),
            _ => serde_json::Value::Null,
        }
    }
}

macro_rules! int_value {
    ($($t:ty),*) => {$(
        impl From<$t> for Value {
            fn from(x: $t) -> Value { Value::Int(Some(x as i64)) }
        }
        impl From<Option<$t>> for Value {
            fn from(x: Option<$t>) -> Value { Value::Int(x.map(|x| x as i64)) }
        }
    )*};
}
int_value!(i64, i32, u32);

impl From<bool> for Value {
    fn from(x: bool) -> Value {
        Value::Int(Some(i64::from(x)))
    }
}
impl From<f64> for Value {
    fn from(x: f64) -> Value {
        Value::Real(Some(x))
    }
}
impl From<Option<f64>> for Value {
    fn from(x: Option<f64>) -> Value {
        Value::Real(x)
    }
}
impl From<&str> for Value {
    fn from(x: &str) -> Value {
        Value::Text(Some(x.to_string()))
    }
}
impl From<&String> for Value {
    fn from(x: &String) -> Value {
        Value::Text(Some(x.clone()))
    }
}
impl From<Option<&str>> for Value {
    fn from(x: Option<&str>) -> Value {
        Value::Text(x.map(str::to_string))
    }
}
impl From<&Option<String>> for Value {
    fn from(x: &Option<String>) -> Value {
        Value::Text(x.clone())
    }
}

/// `[a, b, c]` as parameters.
macro_rules! args {
    ($($x:expr),* $(,)?) => { &[$($crate::db::Value::from($x)),*][..] };
}
pub(crate) use args;

/// Result rows with their column names.
#[derive(Debug, Default)]
pub(crate) struct Rows {
    pub(crate) names: Vec<String>,
    pub(crate) rows: Vec<Vec<Value>>,
}

/// What the store needs of an engine, inside a transaction or not.
pub(crate) trait Db {
    /// Run a statement; the rows it changed.
    fn exec(&mut self, sql: &str, args: &[Value]) -> Result<u64, DbError>;
    /// Run a query.
    fn query(&mut self, sql: &str, args: &[Value]) -> Result<Rows, DbError>;
    /// Run an INSERT and return the new row's `id`.
    fn insert(&mut self, sql: &str, args: &[Value]) -> Result<i64, DbError>;
}

/// An engine's error, in its words.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// SQLite.
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    /// PostgreSQL.
    #[error(transparent)]
    Postgres(#[from] postgres::Error),
    /// A result column of a type the store never makes.
    #[error("a column of type {0} (loopvel makes none)")]
    Type(String),
}

/// SQLite, on a connection or a transaction (which derefs to one).
pub(crate) struct Lite<'a>(pub(crate) &'a rusqlite::Connection);

fn lite_params(args: &[Value]) -> Vec<rusqlite::types::Value> {
    args.iter()
        .map(|a| match a {
            Value::Int(Some(x)) => rusqlite::types::Value::Integer(*x),
            Value::Real(Some(x)) => rusqlite::types::Value::Real(*x),
            Value::Text(Some(t)) => rusqlite::types::Value::Text(t.clone()),
            _ => rusqlite::types::Value::Null,
        })
        .collect()
}

/// `loopvel_now()` in a statement: the database's clock, in seconds since
/// 1970, so leases compare on one clock however many machines hold them.
const NOW: &str = "loopvel_now()";

fn lite_sql(sql: &str) -> std::borrow::Cow<'_, str> {
    if sql.contains(NOW) {
        sql.replace(NOW, "((julianday('now') - 2440587.5) * 86400.0)").into()
    } else {
        sql.into()
    }
}

impl Db for Lite<'_> {
    fn exec(&mut self, sql: &str, args: &[Value]) -> Result<u64, DbError> {
        Ok(self.0.execute(&lite_sql(sql), rusqlite::params_from_iter(lite_params(args)))? as u64)
    }
    fn query(&mut self, sql: &str, args: &[Value]) -> Result<Rows, DbError> {
        let mut st = self.0.prepare(&lite_sql(sql))?;
        let names: Vec<String> = st.column_names().map(str::to_string).collect();
        let n = names.len();
        let rows = st
            .query_map(rusqlite::params_from_iter(lite_params(args)), |r| {
                (0..n)
                    .map(|i| {
                        Ok(match r.get_ref(i)? {
                            rusqlite::types::ValueRef::Null => Value::Int(None),
                            rusqlite::types::ValueRef::Integer(x) => Value::Int(Some(x)),
                            rusqlite::types::ValueRef::Real(x) => Value::Real(Some(x)),
                            rusqlite::types::ValueRef::Text(t) => {
                                Value::Text(Some(String::from_utf8_lossy(t).into_owned()))
                            }
                            rusqlite::types::ValueRef::Blob(_) => Value::Int(None),
                        })
                    })
                    .collect::<rusqlite::Result<Vec<Value>>>()
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(Rows { names, rows })
    }
    fn insert(&mut self, sql: &str, args: &[Value]) -> Result<i64, DbError> {
        self.exec(sql, args)?;
        Ok(self.0.last_insert_rowid())
    }
}

/// PostgreSQL, on a client or a transaction.
pub(crate) struct Pg<'a, C: postgres::GenericClient>(pub(crate) &'a mut C);

/// A statement in SQLite's dialect, in PostgreSQL's: `?N` → `$N`, and the
/// one function that differs (`datetime('now')`, UTC, the same text form).
pub(crate) fn pg_sql(sql: &str) -> String {
    let sql = sql
        .replace("datetime('now')", "to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS')")
        .replace(NOW, "CAST(EXTRACT(EPOCH FROM clock_timestamp()) AS DOUBLE PRECISION)");
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        if c == '\'' {
            quoted = !quoted;
        }
        if c == '?' && !quoted && chars.peek().is_some_and(char::is_ascii_digit) {
            out.push('$');
        } else {
            out.push(c);
        }
    }
    out
}

/// The schema in PostgreSQL's types: every integer BIGINT (ids BIGSERIAL),
/// every real DOUBLE PRECISION.
pub(crate) fn pg_schema(sql: &str) -> String {
    pg_sql(sql)
        .replace("INTEGER PRIMARY KEY", "BIGSERIAL PRIMARY KEY")
        .replace(" INTEGER", " BIGINT")
        .replace(" REAL", " DOUBLE PRECISION")
}

fn pg_params(args: &[Value]) -> Vec<Box<dyn postgres::types::ToSql + Sync>> {
    args.iter()
        .map(|a| -> Box<dyn postgres::types::ToSql + Sync> {
            match a {
                Value::Int(x) => Box::new(*x),
                Value::Real(x) => Box::new(*x),
                Value::Text(t) => Box::new(t.clone()),
            }
        })
        .collect()
}

impl<C: postgres::GenericClient> Db for Pg<'_, C> {
    fn exec(&mut self, sql: &str, args: &[Value]) -> Result<u64, DbError> {
        let params = pg_params(args);
        let refs: Vec<&(dyn postgres::types::ToSql + Sync)> = params.iter().map(|p| p.as_ref()).collect();
        Ok(self.0.execute(pg_sql(sql).as_str(), &refs)?)
    }
    fn query(&mut self, sql: &str, args: &[Value]) -> Result<Rows, DbError> {
        use postgres::types::Type;
        let params = pg_params(args);
        let refs: Vec<&(dyn postgres::types::ToSql + Sync)> = params.iter().map(|p| p.as_ref()).collect();
        let statement = self.0.prepare(pg_sql(sql).as_str())?;
        let names = statement.columns().iter().map(|c| c.name().to_string()).collect();
        let mut rows = Vec::new();
        for row in self.0.query(&statement, &refs)? {
            let mut values = Vec::with_capacity(row.len());
            for (i, column) in row.columns().iter().enumerate() {
                let t = column.type_();
                values.push(if *t == Type::INT8 {
                    Value::Int(row.try_get::<_, Option<i64>>(i)?)
                } else if *t == Type::INT4 {
                    Value::Int(row.try_get::<_, Option<i32>>(i)?.map(i64::from))
                } else if *t == Type::INT2 {
                    Value::Int(row.try_get::<_, Option<i16>>(i)?.map(i64::from))
                } else if *t == Type::FLOAT8 {
                    Value::Real(row.try_get::<_, Option<f64>>(i)?)
                } else if *t == Type::FLOAT4 {
                    Value::Real(row.try_get::<_, Option<f32>>(i)?.map(f64::from))
                } else if *t == Type::BOOL {
                    Value::Int(row.try_get::<_, Option<bool>>(i)?.map(i64::from))
                } else if [Type::TEXT, Type::VARCHAR, Type::NAME, Type::BPCHAR, Type::UNKNOWN].contains(t) {
                    Value::Text(row.try_get::<_, Option<String>>(i)?)
                } else {
                    return Err(DbError::Type(t.name().to_string()));
                });
            }
            rows.push(values);
        }
        Ok(Rows { names, rows })
    }
    fn insert(&mut self, sql: &str, args: &[Value]) -> Result<i64, DbError> {
        let rows = self.query(&format!("{sql} RETURNING id"), args)?;
        Ok(rows.rows.first().and_then(|r| r.first()).and_then(Value::int).unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_become_postgres_ones() {
        assert_eq!(pg_sql("SELECT ?1, '?2', ?10 WHERE x = ?2"), "SELECT $1, '?2', $10 WHERE x = $2");
        assert!(pg_sql("UPDATE r SET at = datetime('now')").contains("to_char(now() AT TIME ZONE 'UTC'"));
        let ddl = pg_schema("CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER NOT NULL, x REAL);");
        assert_eq!(ddl, "CREATE TABLE t (id BIGSERIAL PRIMARY KEY, n BIGINT NOT NULL, x DOUBLE PRECISION);");
    }
}
