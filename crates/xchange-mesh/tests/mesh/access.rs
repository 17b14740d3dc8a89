//! Who may use the bus, on a private nats-server started with the configuration
//! `BusAccess` writes (on a free port; never the shared server): an outsider, a valid agent
//! of the bus, cannot read a private task database's events, impersonate another agent,
//! or read the events stream through JetStream; a member can; a client without a key
//! cannot connect at all.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio::sync::mpsc;
use xchange_mesh::{AgentAccess, BusAccess, nkey_seed};
use xchange_protocol::AgentKey;

const PREFIX: &str = "acl";

struct Server {
    child: Child,
    dir: PathBuf,
    url: String,
}

impl Server {
    fn start(config: &str) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let dir = std::env::temp_dir().join(format!("xchange-acl-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("nats.conf");
        let store = dir.join("js");
        let text =
            format!("listen: 127.0.0.1:{port}\njetstream {{ store_dir: \"{}\" }}\n{config}", store.display());
        std::fs::write(&file, text).unwrap();
        let child = Command::new("nats-server")
            .arg("-c")
            .arg(&file)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server is installed (CI installs it)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "nats-server did not come up");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self { child, dir, url: format!("nats://127.0.0.1:{port}") }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A client authenticated with `seed`'s nkey; the server's complaints go to the receiver.
async fn connect(url: &str, seed: [u8; 32]) -> (async_nats::Client, mpsc::UnboundedReceiver<String>) {
    let (errors, complaints) = mpsc::unbounded_channel();
    let client = async_nats::ConnectOptions::new()
        .nkey(nkey_seed(&seed))
        .event_callback(move |event| {
            let errors = errors.clone();
            async move {
                if let async_nats::Event::ServerError(e) = event {
                    let _ = errors.send(e.to_string());
                }
            }
        })
        .connect(url)
        .await
        .expect("an agent of the bus connects");
    (client, complaints)
}

async fn complaint(complaints: &mut mpsc::UnboundedReceiver<String>) -> String {
    tokio::time::timeout(Duration::from_secs(5), complaints.recv())
        .await
        .expect("the server complains")
        .expect("a complaint")
}

/// The next message within `wait`: generous where one is expected (a loaded CI machine
/// can be slow), short where none may come (what arrives late would still be seen by the
/// next expected read, which would then fail).
async fn next_within(sub: &mut async_nats::Subscriber, wait: Duration) -> Option<String> {
    let message = tokio::time::timeout(wait, sub.next()).await.ok().flatten()?;
    Some(String::from_utf8_lossy(&message.payload).into_owned())
}

async fn next(sub: &mut async_nats::Subscriber) -> Option<String> {
    next_within(sub, Duration::from_secs(10)).await
}

async fn nothing_more(sub: &mut async_nats::Subscriber) -> Option<String> {
    next_within(sub, Duration::from_millis(500)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outsider_cannot_read_a_private_databases_events_or_speak_for_another() {
    let seed = |n: u8| [n; 32];
    let id = |n: u8| AgentKey::from_seed(seed(n)).id();
    let (node, member, outsider) = (id(1), id(2), id(3));
    let access = BusAccess {
        prefix: PREFIX.into(),
        nodes: vec![node],
        agents: vec![
            AgentAccess { agent: member, member_of: vec!["secret".into()] },
            AgentAccess { agent: outsider, member_of: vec![] },
        ],
        private_taskdbs: vec!["secret".into()],
    };
    let server = Server::start(&access.nats_config());

    // Without a key, nobody gets in.
    let anonymous =
        async_nats::ConnectOptions::new().connection_timeout(Duration::from_secs(2)).connect(&server.url);
    let refused = tokio::time::timeout(Duration::from_secs(5), anonymous).await.expect("an answer");
    let err = refused.expect_err("an anonymous client connected").to_string();
    assert!(err.to_lowercase().contains("authoriz"), "{err}");

    let (node_client, _) = connect(&server.url, seed(1)).await;
    let (member_client, _) = connect(&server.url, seed(2)).await;
    let (outsider_client, mut complaints) = connect(&server.url, seed(3)).await;

    // Events: the member reads the private database's, the outsider only public ones.
    let private = format!("{PREFIX}.events.secret.job_posting");
    let public = format!("{PREFIX}.events.open.job_posting");
    let mut member_private = member_client.subscribe(format!("{PREFIX}.events.secret.>")).await.unwrap();
    let mut outsider_private = outsider_client.subscribe(format!("{PREFIX}.events.secret.>")).await.unwrap();
    let mut outsider_public = outsider_client.subscribe(format!("{PREFIX}.events.open.>")).await.unwrap();
    let said = complaint(&mut complaints).await;
    assert!(said.contains("Permissions Violation for Subscription") && said.contains("secret"), "{said}");
    member_client.flush().await.unwrap();
    outsider_client.flush().await.unwrap();
    node_client.publish(private.clone(), "the secret job".into()).await.unwrap();
    node_client.publish(public.clone(), "the open job".into()).await.unwrap();
    node_client.flush().await.unwrap();
    assert_eq!(next(&mut member_private).await.as_deref(), Some("the secret job"));
    assert_eq!(next(&mut outsider_public).await.as_deref(), Some("the open job"));
    assert_eq!(nothing_more(&mut outsider_private).await, None, "the outsider read a private event");
    // A wildcard over every database does not open the private one either.
    let mut outsider_all = outsider_client.subscribe(format!("{PREFIX}.events.>")).await.unwrap();
    outsider_client.flush().await.unwrap();
    node_client.publish(private, "another secret".into()).await.unwrap();
    node_client.publish(public, "another open".into()).await.unwrap();
    node_client.flush().await.unwrap();
    assert_eq!(next(&mut outsider_all).await.as_deref(), Some("another open"));
    assert_eq!(nothing_more(&mut outsider_all).await, None, "the wildcard delivered a private event");

    // Inboxes: the outsider may write to the member as itself, not as the member.
    let mut member_inbox = member_client.subscribe(format!("{PREFIX}.agent.{member}.>")).await.unwrap();
    member_client.flush().await.unwrap();
    let forged = format!("{PREFIX}.agent.{member}.{member}");
    outsider_client.publish(forged, "from the member, supposedly".into()).await.unwrap();
    let own = format!("{PREFIX}.agent.{member}.{outsider}");
    outsider_client.publish(own, "from the outsider".into()).await.unwrap();
    outsider_client.flush().await.unwrap();
    let said = complaint(&mut complaints).await;
    assert!(said.contains("Permissions Violation for Publish"), "{said}");
    assert_eq!(next(&mut member_inbox).await.as_deref(), Some("from the outsider"));
    assert_eq!(nothing_more(&mut member_inbox).await, None, "the forged message arrived");

    // The events stream through JetStream: the node has it, the outsider cannot read it.
    let node_js = async_nats::jetstream::new(node_client.clone());
    let stream = format!("{}_EVENTS", PREFIX.to_uppercase());
    node_js
        .create_stream(async_nats::jetstream::stream::Config {
            name: stream.clone(),
            subjects: vec![format!("{PREFIX}.events.>")],
            ..Default::default()
        })
        .await
        .expect("the node creates the events stream");
    let outsider_js = async_nats::jetstream::new(outsider_client.clone());
    let consumer = async_nats::jetstream::consumer::pull::Config::default();
    let attempt = tokio::time::timeout(
        Duration::from_secs(5),
        outsider_js.create_consumer_on_stream(consumer, stream.as_str()),
    )
    .await;
    assert!(!matches!(attempt, Ok(Ok(_))), "the outsider made a consumer on the events stream");
    drop(server);
}
