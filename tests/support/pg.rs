//! A fresh PostgreSQL database per test on the machine's server
//! (`LOOPVEL_TEST_POSTGRES`, default `postgres://root@127.0.0.1:5432/postgres`),
//! dropped when the guard goes. Without a server the test says so and
//! skips, so `cargo test` works on a machine with only Rust and Python;
//! with `LOOPVEL_REQUIRE_POSTGRES=1` (set by `.ci/run`) it fails instead.
#![allow(dead_code)]

pub struct FreshPg {
    pub url: String,
    admin: String,
    name: String,
}

fn admin() -> Option<postgres::Client> {
    let url = admin_url();
    match postgres::Client::connect(&url, postgres::NoTls) {
        Ok(c) => Some(c),
        Err(e) if std::env::var_os("LOOPVEL_REQUIRE_POSTGRES").is_some() => {
            panic!("PostgreSQL at {url} is required (LOOPVEL_REQUIRE_POSTGRES is set): {e}")
        }
        Err(e) => {
            eprintln!(
                "SKIPPED: no PostgreSQL at {url} ({e}); set LOOPVEL_TEST_POSTGRES to a server's URL to run this test"
            );
            None
        }
    }
}

fn admin_url() -> String {
    std::env::var("LOOPVEL_TEST_POSTGRES").unwrap_or_else(|_| "postgres://root@127.0.0.1:5432/postgres".into())
}

impl FreshPg {
    /// A fresh database, or `None` (said on standard error) when there is no server and none is required.
    pub fn new(tag: &str) -> Option<FreshPg> {
        let name = format!("loopvel_e2e_{tag}_{}", std::process::id());
        let mut c = admin()?;
        c.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).unwrap();
        c.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
        let url = admin_url();
        let (base, _) = url.rsplit_once('/').unwrap();
        Some(FreshPg { url: format!("{base}/{name}"), admin: url, name })
    }
}

impl Drop for FreshPg {
    fn drop(&mut self) {
        if let Ok(mut c) = postgres::Client::connect(&self.admin, postgres::NoTls) {
            let _ = c.batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name));
        }
    }
}
