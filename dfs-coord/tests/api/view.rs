//! The live cluster view (`view.rs`): its JSON answers follow a node going down and a
//! repair, in process; over TCP, the token is enforced and a non-loopback address without
//! one is refused.

use super::maintenance::{lose, setup};
use super::*;
use dfs_coord::view::route;
use dfs_ops::http::{get, get_with, Request, Response};
use std::time::Duration;

fn get_req(target: &str) -> Request {
    Request::parse(&format!("GET {target} HTTP/1.0\r\n\r\n")).unwrap()
}

async fn ask(t: &T, target: &str) -> Response {
    route(&t.c, None, get_req(target)).await
}

#[tokio::test]
async fn view_follows_a_node_down_and_its_repair() {
    let grace = Duration::from_secs(60);
    let (t, _fake) = setup(
        CoordSettings {
            replicas: 2,
            repair_grace: grace,
            ..Default::default()
        },
        3,
    )
    .await;
    let dir = t.mkdir(ROOT, "d").await;
    let f = t.file(dir.ino, "f").await;
    let data = b"watched".to_vec();
    t.commit(f.ino, 7, vec![cshard(0, &data, &[1, 2])], USER)
        .await
        .unwrap();

    let page = ask(&t, "/").await;
    assert_eq!(page.status, "200 OK");
    assert!(page.content_type.starts_with("text/html"));
    assert!(page.body.contains("dfs cluster view"));

    let ev = ask(&t, "/api/events").await;
    assert_eq!(ev.content_type, "application/json");
    assert_eq!(
        ev.body.matches("\"kind\":\"node_up\"").count(),
        3,
        "{}",
        ev.body
    );

    // Node 1 stops sending heartbeats: Down in the status and in the events.
    let down_at = lose(&t, 3, &[1]).await;
    let st = ask(&t, "/api/status").await;
    assert_eq!(st.status, "200 OK");
    assert!(
        st.body.contains(
            "\"id\":\"0000000000000001\",\"address\":\"127.0.0.1:7001\",\"state\":\"down\""
        ),
        "{}",
        st.body
    );
    assert!(st.body.contains("\"under_replicated\":1"), "{}", st.body);
    let ev = ask(&t, "/api/events?after=3").await;
    assert!(ev.body.starts_with("[{\"seq\":4,"), "{}", ev.body);
    assert!(ev.body.contains("\"kind\":\"node_down\""), "{}", ev.body);
    assert!(ev
        .body
        .contains("node 0000000000000001 at 127.0.0.1:7001 is down"));

    // The file's shard: one copy on the down node, one on node 2.
    let w = ask(&t, "/api/where?path=%2Fd%2F.%2Ff").await;
    assert_eq!(w.status, "200 OK", "{}", w.body);
    assert!(w.body.starts_with("{\"path\":\"/d/f\""), "{}", w.body);
    assert!(
        w.body.contains(
            "{\"id\":\"0000000000000001\",\"address\":\"127.0.0.1:7001\",\"state\":\"down\"}"
        ),
        "{}",
        w.body
    );

    // Past the grace, repair copies the shard; the next pass finds nothing left.
    t.c.maintain_once(down_at + grace + Duration::from_secs(1))
        .await
        .unwrap();
    t.c.maintain_once(down_at + grace + Duration::from_secs(2))
        .await
        .unwrap();
    let ev = ask(&t, "/api/events?after=4").await;
    let started = ev.body.find("\"kind\":\"repair_started\"");
    let finished = ev.body.find("\"kind\":\"repair_finished\"");
    assert!(
        matches!((started, finished), (Some(s), Some(f)) if s < f),
        "{}",
        ev.body
    );
    assert!(
        ev.body.contains("after node 0000000000000001 went down"),
        "{}",
        ev.body
    );
    let st = ask(&t, "/api/status").await;
    assert!(st.body.contains("\"under_replicated\":0"), "{}", st.body);
    assert!(st.body.contains("\"repaired\":1"), "{}", st.body);
    let w = ask(&t, "/api/where?path=/d/f").await;
    assert!(w.body.contains("\"id\":\"0000000000000003\""), "{}", w.body);
}

#[tokio::test]
async fn view_answers_bad_requests_readably() {
    let t = T::new();
    t.mkdir(ROOT, "dir").await;
    let missing = ask(&t, "/api/where?path=/nope").await;
    assert_eq!(missing.status, "404 Not Found");
    assert!(
        missing.body.contains("\"error\":\"/nope:"),
        "{}",
        missing.body
    );
    let dir = ask(&t, "/api/where?path=/dir").await;
    assert_eq!(dir.status, "400 Bad Request", "{}", dir.body);
    assert!(dir.body.contains("not a regular file"), "{}", dir.body);
    assert_eq!(ask(&t, "/api/where").await.status, "400 Bad Request");
    let long = format!("/api/where?path=/{}", "a".repeat(5000));
    assert_eq!(ask(&t, &long).await.status, "400 Bad Request");
    assert_eq!(ask(&t, "/nothing").await.status, "404 Not Found");
    let post = Request::parse("POST /api/status HTTP/1.0\r\n\r\n").unwrap();
    assert_eq!(
        route(&t.c, None, post).await.status,
        "405 Method Not Allowed"
    );
    // A malformed `after` is ignored rather than an error: all events.
    assert_eq!(ask(&t, "/api/events?after=x").await.body, "[]");
}

/// Starts `run` with the view on `view` and `token`; returns the stop handle and the
/// server task, once the address file shows it is up (or the task ended).
async fn start(
    view: std::net::SocketAddr,
    token: Option<&str>,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<anyhow::Result<()>>,
    tempfile::TempDir,
) {
    let certs = tempfile::tempdir().unwrap();
    dfs_pki::init_dir(certs.path(), "t", 1).unwrap();
    let addr_file = certs.path().join("addr");
    let cfg = dfs_coord::CoordConfig {
        data: certs.path().join("meta"),
        listen: "127.0.0.1:0".parse().unwrap(),
        certs: certs.path().to_path_buf(),
        cert_name: "coord".into(),
        settings: CoordSettings::default(),
        addr_file: Some(addr_file.clone()),
        metrics_listen: None,
        view_listen: Some(view),
        view_token: token.map(str::to_string),
    };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(dfs_coord::run(cfg, async {
        let _ = stop_rx.await;
    }));
    for _ in 0..250 {
        if addr_file.exists() || server.is_finished() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (stop_tx, server, certs)
}

#[tokio::test]
async fn view_over_tcp_requires_its_token() {
    // A port free when asked; nothing else in this test binds it.
    let view = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let (stop, server, _dir) = start(view, Some("s3cret")).await;
    assert!(!server.is_finished(), "the coordinator did not start");

    let (status, body) = get(view, "/api/status").await.unwrap();
    assert_eq!(status, "HTTP/1.0 401 Unauthorized", "{body}");
    let (status, _) = get(view, "/?token=wrong").await.unwrap();
    assert_eq!(status, "HTTP/1.0 401 Unauthorized");
    let (status, body) = get(view, "/?token=s3cret").await.unwrap();
    assert_eq!(status, "HTTP/1.0 200 OK");
    assert!(body.contains("<title>dfs cluster view</title>"));
    let (status, body) = get_with(view, "/api/status", &["Authorization: Bearer s3cret"])
        .await
        .unwrap();
    assert_eq!(status, "HTTP/1.0 200 OK");
    assert!(body.starts_with("{\"nodes\":[]"), "{body}");

    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("run() returns after shutdown")
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn view_refuses_a_public_address_without_a_token() {
    let (_stop, server, _dir) = start("0.0.0.0:0".parse().unwrap(), None).await;
    let err = tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("run() fails at once")
        .unwrap()
        .unwrap_err();
    assert!(
        format!("{err:#}").contains("not a loopback address"),
        "{err:#}"
    );
}

#[tokio::test]
async fn corruption_and_garbage_collection_are_events() {
    let unref = Duration::from_millis(200);
    let (t, _fake) = setup(
        CoordSettings {
            unref_grace: unref,
            ..Default::default()
        },
        3,
    )
    .await;
    let f = t.file(ROOT, "f").await;
    let data = b"short-lived".to_vec();
    let id = ShardId::of(&data);
    t.commit(f.ino, 11, vec![cshard(0, &data, &[1, 2])], USER)
        .await
        .unwrap();
    t.node_call(CoordRequest::ReportCorrupt {
        node: NodeId(1),
        id,
    })
    .await
    .unwrap();
    // Truncating drops the shard's only reference: past the unref grace it is collected.
    t.setattr(
        f.ino,
        SetAttrs {
            size: Some(0),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let t0 = std::time::Instant::now();
    t.c.maintain_once(t0).await.unwrap();
    t.c.maintain_once(t0 + unref * 2).await.unwrap();

    let ev = ask(&t, "/api/events?after=3").await.body;
    let corrupt = format!("node 0000000000000001 reported shard {id} corrupt");
    assert!(ev.contains("\"kind\":\"corruption\""), "{ev}");
    assert!(ev.contains(&corrupt), "{ev}");
    assert!(
        ev.contains("\"kind\":\"gc\",\"text\":\"gc: removed 1 shards"),
        "{ev}"
    );
}
