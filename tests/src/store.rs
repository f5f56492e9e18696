//! Which store the appliances of a test run use: SQLite in the state directory (the
//! default), or with `SIGNET_TEST_STORE=postgres` a database of its own on one real
//! PostgreSQL server per test binary, over verified TLS.

use std::path::Path;
use std::sync::OnceLock;

use signet::store::{PostgresTarget, Store};

use crate::postgres::{Postgres, PASSWORD};

/// The backend this test run uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// SQLite, the embedded default.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

impl Backend {
    /// `SIGNET_TEST_STORE`, SQLite when unset. An unknown value stops the run.
    pub fn of_this_run() -> Backend {
        match std::env::var("SIGNET_TEST_STORE").as_deref() {
            Err(_) | Ok("") | Ok("sqlite") => Backend::Sqlite,
            Ok("postgres") => Backend::Postgres,
            Ok(other) => panic!("SIGNET_TEST_STORE={other:?}: expected sqlite or postgres"),
        }
    }

    /// As `[store] backend` names it.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// The PostgreSQL server of this test binary, started at first use.
pub fn server() -> &'static Postgres {
    static SERVER: OnceLock<Postgres> = OnceLock::new();
    SERVER.get_or_init(Postgres::start)
}

/// Point a fresh appliance's config at this run's store: with PostgreSQL, a new database.
pub(crate) fn configure(table: &mut toml::Table) {
    if Backend::of_this_run() == Backend::Sqlite {
        return;
    }
    let pg = server();
    let database = pg.create_database();
    use_postgres(table, pg, &database);
}

/// Point a config at `database` on `pg`, over verified TLS with the password in the config.
pub fn use_postgres(table: &mut toml::Table, pg: &Postgres, database: &str) {
    let mut store = toml::Table::new();
    store.insert("backend".into(), "postgres".into());
    store.insert("url".into(), pg.url(database).into());
    store.insert("password".into(), PASSWORD.into());
    store.insert(
        "ca_file".into(),
        pg.ca_file().to_string_lossy().into_owned().into(),
    );
    table.insert("store".into(), toml::Value::Table(store));
}

/// The store the appliance whose config is at `config` (state in `state_dir`) uses, opened
/// beside its daemon, as a tool would.
pub fn open(config: &Path, state_dir: &Path) -> Store {
    let text = std::fs::read_to_string(config).expect("config");
    let table: toml::Table = text.parse().expect("config parses");
    let Some(store) = table.get("store").and_then(|s| s.as_table()) else {
        return Store::open(&state_dir.join("signet.db")).expect("SQLite store");
    };
    let text = |key: &str| store.get(key).and_then(|v| v.as_str()).map(str::to_owned);
    Store::connect(&PostgresTarget {
        url: text("url").expect("store.url"),
        password: text("password").map(Into::into),
        ca_file: text("ca_file").map(Into::into),
    })
    .expect("PostgreSQL store")
}
