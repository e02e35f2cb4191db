//! Logins PostgreSQL refuses (a missing database, a missing role) are reported with the
//! server's own words and are definite: retrying cannot help, the URL must change.

use stream_core::{CheckpointStore, ErrorClass, Sink, SinkError};
use stream_postgres::{PostgresCheckpointStore, PostgresError, PostgresSink, PostgresSinkConfig};
use stream_testkit::{Server, unique_name};

/// The test server's URL with another database (and, if given, another user).
fn url_with(database: &str, user: Option<&str>) -> String {
    let url = Server::Postgres.url();
    let (base, _) = url.rsplit_once('/').expect("URL has a database");
    let base = match user {
        Some(user) => {
            let (scheme, rest) = base.split_once("://").expect("URL has a scheme");
            let host = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
            format!("{scheme}://{user}:s3cret-pw@{host}")
        }
        None => base.to_owned(),
    };
    format!("{base}/{database}")
}

#[tokio::test]
async fn postgres_login_to_a_missing_database_is_refused_for_good_with_the_servers_words() {
    let url = url_with(&unique_name("nodb"), None);
    let e = stream_postgres::check_login(&url)
        .await
        .expect_err("the database does not exist");
    assert!(matches!(e, PostgresError::Refused { .. }), "{e:?}");
    assert_eq!(e.class(), ErrorClass::Definite);
    let said = e.to_string();
    assert!(said.contains("does not exist"), "{said}");
    assert!(said.contains("3D000"), "{said}");
    assert!(!said.contains("db error"), "{said}");

    let store = PostgresCheckpointStore::new(url.clone());
    let e = store.load("p").await.expect_err("no database");
    assert!(e.to_string().contains("does not exist"), "{e}");

    let mut sink = PostgresSink::new("login", PostgresSinkConfig::new(url));
    let batch = [crate::support::change(
        "shop",
        stream_core::Op::Insert,
        1,
        Some(crate::support::row(1, "ann")),
        "binlog:b.000001:10+1",
    )];
    match sink.write(&batch).await {
        Err(SinkError::Write { class, reason, .. }) => {
            assert_eq!(class, ErrorClass::Definite, "{reason}");
            assert!(reason.contains("does not exist"), "{reason}");
        }
        other => panic!("expected a definite write error, got {other:?}"),
    }
}

#[tokio::test]
async fn postgres_login_of_a_missing_role_is_refused_without_showing_the_password() {
    let url = url_with("postgres", Some(&unique_name("norole")));
    let e = stream_postgres::check_login(&url)
        .await
        .expect_err("the role does not exist");
    assert_eq!(e.class(), ErrorClass::Definite, "{e}");
    let said = e.to_string();
    assert!(said.contains("28000"), "{said}");
    assert!(said.contains("check the user, password"), "{said}");
    assert!(!said.contains("s3cret-pw"), "{said}");
}

#[tokio::test]
async fn postgres_login_to_a_closed_port_is_transient_and_says_why() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("address").port()
    };
    let e = stream_postgres::check_login(&format!("postgres://u:pw@127.0.0.1:{port}/d"))
        .await
        .expect_err("nothing listens");
    assert_eq!(e.class(), ErrorClass::Transient, "{e}");
    assert!(e.to_string().to_lowercase().contains("refused"), "{e}");
}

#[tokio::test]
async fn postgres_login_to_a_server_that_never_answers_gives_up_at_connect_timeout() {
    // Accepts the connection and says nothing: a hung server, or a proxy in front of a dead
    // one. The login must fail (and be retried by its caller), not wait for ever.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("address").port();
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let url = format!("postgres://u:s3cret-pw@127.0.0.1:{port}/d?connect_timeout=1");
    let e = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        stream_postgres::check_login(&url),
    )
    .await
    .expect("still waiting for the login 30 s later")
    .expect_err("nobody answers");
    assert_eq!(e.class(), ErrorClass::Transient, "{e}");
    let said = e.to_string();
    assert!(
        said.contains("no answer within 2 s (connect_timeout, 1 s,"),
        "{said}"
    );
    assert!(!said.contains("s3cret-pw"), "{said}");
    silent.abort();
}
