//! Two tenants from the command line: `amas token create --tenant` mints a token of each;
//! `GET /api/v1/me` shows the tenant AMAS understood; one tenant's task is a 404 for the
//! other, exactly like an id that does not exist, and absent from its listing.

#![expect(
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly on unexpected errors"
)]

mod common;

use serde_json::json;

use common::Server;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_of_two_tenants_from_the_cli_keep_to_their_tenant() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), None);
    let acme = server.token_in("alice", &["submitter"], Some("acme"));
    let globex = server.token_in("mallory", &["admin"], Some("globex"));

    let (status, me) = server.get(&acme, "/api/v1/me").await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["tenant"], "acme", "{me}");
    assert_eq!(me["sub"], "alice", "{me}");
    let (_, me) = server.get(&globex, "/api/v1/me").await;
    assert_eq!(me["tenant"], "globex", "{me}");

    let (status, created) = server
        .post(
            &acme,
            "/api/v1/tasks",
            &json!({"task_type": "research_report", "title": "t", "description": "d"}),
        )
        .await;
    assert_eq!(status, 202, "{created}");
    let id = created["id"].as_str().unwrap();
    let (status, _) = server.get(&acme, &format!("/api/v1/tasks/{id}")).await;
    assert_eq!(status, 200);
    let (status, theirs) = server.get(&globex, &format!("/api/v1/tasks/{id}")).await;
    assert_eq!(status, 404, "{theirs}");
    assert_eq!(theirs["error"]["code"], "AMAS-API-0002");
    let (_, listed) = server.get(&globex, "/api/v1/tasks").await;
    assert_eq!(listed["tasks"], json!([]), "{listed}");
}
