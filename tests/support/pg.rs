//! A fresh PostgreSQL database per test on the machine's server
//! (`LOOPVEL_TEST_POSTGRES`, default `postgres://root@127.0.0.1:5432/postgres`),
//! dropped when the guard goes. No server fails the test; it never skips.
#![allow(dead_code)]

pub struct FreshPg {
    pub url: String,
    admin: String,
    name: String,
}

fn admin() -> postgres::Client {
    let url = admin_url();
    postgres::Client::connect(&url, postgres::NoTls)
        .unwrap_or_else(|e| panic!("PostgreSQL at {url} is needed for this test (CI runs one): {e}"))
}

fn admin_url() -> String {
    std::env::var("LOOPVEL_TEST_POSTGRES").unwrap_or_else(|_| "postgres://root@127.0.0.1:5432/postgres".into())
}

impl FreshPg {
    pub fn new(tag: &str) -> FreshPg {
        let name = format!("loopvel_e2e_{tag}_{}", std::process::id());
        let mut c = admin();
        c.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).unwrap();
        c.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
        let url = admin_url();
        let (base, _) = url.rsplit_once('/').unwrap();
        FreshPg { url: format!("{base}/{name}"), admin: url, name }
    }
}

impl Drop for FreshPg {
    fn drop(&mut self) {
        if let Ok(mut c) = postgres::Client::connect(&self.admin, postgres::NoTls) {
            let _ = c.batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name));
        }
    }
}
