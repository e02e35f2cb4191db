//! Each test server is up and configured the way the connectors and sinks need it.
//! These run against the servers of `cargo xtask test` (or real ones given by URL).

use stream_testkit::{Server, unique_name};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

mod mariadb {
    use super::*;
    use mysql_async::prelude::*;

    async fn conn() -> mysql_async::Conn {
        let opts =
            mysql_async::Opts::from_url(&Server::MySql.url()).expect("STREAM_TEST_MYSQL_URL");
        mysql_async::Conn::new(opts)
            .await
            .expect("connect to MySQL/MariaDB")
    }

    #[tokio::test]
    async fn mariadb_binlog_is_on_in_row_format_with_full_images() {
        let mut c = conn().await;
        let (log_bin, format, image): (u8, String, String) = c
            .query_first("SELECT @@log_bin, @@binlog_format, @@binlog_row_image")
            .await
            .expect("query")
            .expect("row");
        assert_eq!(
            (log_bin, format.as_str(), image.as_str()),
            (1, "ROW", "FULL")
        );
    }

    #[tokio::test]
    async fn mariadb_test_user_may_replicate_and_create_databases() {
        let mut c = conn().await;
        let grants: Vec<String> = c.query("SHOW GRANTS").await.expect("grants");
        let all = grants.join("\n");
        assert!(
            all.contains("ALL PRIVILEGES ON *.*") || all.contains("REPLICATION SLAVE"),
            "the test user lacks replication privileges: {all}"
        );
        let db = unique_name("srv");
        c.query_drop(format!("CREATE DATABASE `{db}`"))
            .await
            .expect("create db");
        c.query_drop(format!("DROP DATABASE `{db}`"))
            .await
            .expect("drop db");
    }

    #[tokio::test]
    async fn mariadb_commits_advance_the_binlog() {
        let mut c = conn().await;
        let db = unique_name("binlog");
        c.query_drop(format!("CREATE DATABASE `{db}`"))
            .await
            .expect("create db");
        c.query_drop(format!("CREATE TABLE `{db}`.t (id INT PRIMARY KEY)"))
            .await
            .expect("table");
        let before: mysql_async::Row = c
            .query_first("SHOW MASTER STATUS")
            .await
            .expect("status")
            .expect("binlog on");
        let before_pos: u64 = before.get(1).expect("position");
        c.query_drop(format!("INSERT INTO `{db}`.t VALUES (1), (2)"))
            .await
            .expect("insert");
        let after: mysql_async::Row = c
            .query_first("SHOW MASTER STATUS")
            .await
            .expect("status")
            .expect("binlog on");
        let after_pos: u64 = after.get(1).expect("position");
        let (before_file, after_file): (String, String) =
            (before.get(0).expect("file"), after.get(0).expect("file"));
        assert!(
            after_file > before_file || after_pos > before_pos,
            "binlog did not move: {before_file}:{before_pos} -> {after_file}:{after_pos}"
        );
        c.query_drop(format!("DROP DATABASE `{db}`"))
            .await
            .expect("drop db");
    }
}

mod postgres {
    use super::*;

    #[tokio::test]
    async fn postgres_accepts_writes_and_has_logical_wal() {
        let (client, connection) =
            tokio_postgres::connect(&Server::Postgres.url(), tokio_postgres::NoTls)
                .await
                .expect("connect to PostgreSQL");
        tokio::spawn(connection);
        let wal: String = client
            .query_one("SHOW wal_level", &[])
            .await
            .expect("wal_level")
            .get(0);
        assert_eq!(wal, "logical");
        let table = unique_name("pg");
        client
            .batch_execute(&format!("CREATE TABLE {table} (id int primary key, v text); INSERT INTO {table} VALUES (1, 'x')"))
            .await
            .expect("create and insert");
        let v: String = client
            .query_one(&format!("SELECT v FROM {table} WHERE id = 1"), &[])
            .await
            .expect("select")
            .get(0);
        assert_eq!(v, "x");
        client
            .batch_execute(&format!("DROP TABLE {table}"))
            .await
            .expect("drop");
    }
}

mod redis {
    use super::*;

    async fn command(stream: &mut BufReader<TcpStream>, parts: &[&str]) -> String {
        let mut req = format!("*{}\r\n", parts.len());
        for p in parts {
            req.push_str(&format!("${}\r\n{p}\r\n", p.len()));
        }
        stream
            .get_mut()
            .write_all(req.as_bytes())
            .await
            .expect("write");
        let mut line = String::new();
        stream.read_line(&mut line).await.expect("read");
        if let Some(len) = line.strip_prefix('$') {
            let len: usize = len.trim().parse().expect("bulk length");
            let mut body = vec![0; len + 2];
            stream.read_exact(&mut body).await.expect("bulk");
            return String::from_utf8_lossy(&body[..len]).into_owned();
        }
        line.trim_end().to_owned()
    }

    #[tokio::test]
    async fn redis_answers_ping_and_stores_values() {
        let tcp = TcpStream::connect(Server::Redis.host_port())
            .await
            .expect("connect to Redis");
        let mut s = BufReader::new(tcp);
        assert_eq!(command(&mut s, &["PING"]).await, "+PONG");
        let key = unique_name("redis");
        assert_eq!(command(&mut s, &["SET", &key, "v1"]).await, "+OK");
        assert_eq!(command(&mut s, &["GET", &key]).await, "v1");
        assert_eq!(command(&mut s, &["DEL", &key]).await, ":1");
    }
}

mod nats {
    use super::*;

    #[tokio::test]
    async fn nats_has_jetstream_and_answers_ping() {
        let tcp = TcpStream::connect(Server::Nats.host_port())
            .await
            .expect("connect to NATS");
        let mut s = BufReader::new(tcp);
        let mut info = String::new();
        s.read_line(&mut info).await.expect("INFO");
        assert!(info.starts_with("INFO "), "{info}");
        assert!(
            info.contains("\"jetstream\":true"),
            "JetStream is off: {info}"
        );
        s.get_mut()
            .write_all(b"CONNECT {\"verbose\":false}\r\nPING\r\n")
            .await
            .expect("write");
        let mut pong = String::new();
        s.read_line(&mut pong).await.expect("PONG");
        assert_eq!(pong.trim_end(), "PONG");
    }
}

mod mongo {
    use super::*;
    use bson::doc;

    /// One OP_MSG command, answered with its reply document.
    async fn command(stream: &mut TcpStream, cmd: bson::Document) -> bson::Document {
        let body = bson::to_vec(&cmd).expect("encode");
        let len = 16 + 4 + 1 + body.len();
        let mut msg = Vec::with_capacity(len);
        msg.extend_from_slice(&(len as i32).to_le_bytes());
        msg.extend_from_slice(&1i32.to_le_bytes()); // request id
        msg.extend_from_slice(&0i32.to_le_bytes()); // response to
        msg.extend_from_slice(&2013i32.to_le_bytes()); // OP_MSG
        msg.extend_from_slice(&0u32.to_le_bytes()); // flags
        msg.push(0); // section kind 0: body
        msg.extend_from_slice(&body);
        stream.write_all(&msg).await.expect("write");
        let mut header = [0u8; 16];
        stream.read_exact(&mut header).await.expect("header");
        let total = i32::from_le_bytes(header[..4].try_into().expect("4 bytes")) as usize;
        let mut rest = vec![0u8; total - 16];
        stream.read_exact(&mut rest).await.expect("reply");
        bson::from_slice(&rest[5..]).expect("reply document")
    }

    #[tokio::test]
    async fn mongo_is_a_writable_replica_set_member() {
        let mut tcp = TcpStream::connect(Server::Mongo.host_port())
            .await
            .expect("connect to MongoDB");
        let hello = command(&mut tcp, doc! {"hello": 1, "$db": "admin"}).await;
        assert_eq!(
            hello.get_bool("isWritablePrimary").ok(),
            Some(true),
            "{hello}"
        );
        let set = hello.get_str("setName").unwrap_or_default();
        assert!(
            !set.is_empty(),
            "not a replica set, so no change streams: {hello}"
        );
    }
}
