//! The operator console: sessions, CSRF, escaping and headers over plain
//! HTTP, then an operator's round in a real browser (headless chromium).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use fantoccini::Locator;
use serde_json::Value;

use crate::support::*;

const HCP_SECRET: &str = "hcp_webhook_signing_secret_EXAMPLE";

/// A daemon with a Housecall Pro source, the console, and accounting-sync
/// delivering to a fake destination that fails as told. Deliveries give up
/// after two attempts, so a failing destination fills the dead letters.
struct Setup {
    dir: tempfile::TempDir,
    admin: AdminApi,
    destination: FakeDestination,
    daemon: DaemonProcess,
}

impl Setup {
    async fn start() -> Self {
        let destination = FakeDestination::start().await;
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("hcp.secret"), HCP_SECRET).unwrap();
        let admin = AdminApi::new(dir.path());
        std::fs::write(
            dir.path().join("fieldhook.toml"),
            format!(
                r#"
listen = "127.0.0.1:0"

{admin}
[delivery]
max_attempts = 2
retry_base_ms = 50

[[sources]]
name = "hcp"
vendor = "housecall-pro"
secret_file = "hcp.secret"
"#,
                admin = admin.config()
            ),
        )
        .unwrap();
        install_plugin(
            &dir.path().join("plugins"),
            "accounting-sync",
            &guest("accounting-sync"),
            &format!(
                "name = \"accounting-sync\"\nversion = \"0.1.0\"\n\n[[subscriptions]]\nsource = \"hcp\"\nkinds = [\"job.completed\"]\n\n{}\n[config]\nendpoint = \"{}/books/jobs\"\n",
                http_grant(&destination.url),
                destination.url
            ),
        );
        let daemon = DaemonProcess::start(&dir.path().join("fieldhook.toml"));
        Self {
            dir,
            admin,
            destination,
            daemon,
        }
    }

    /// Sends a signed Housecall Pro webhook; returns the stored event's id.
    async fn webhook(&self, kind: &str, job: &str, note: &str) -> String {
        let body = serde_json::json!({
            "event": kind,
            "event_occurred_at": "2026-11-20T15:04:05Z",
            "company_id": "c1",
            "job": { "id": job, "invoice_number": "1042", "total_amount": 24500, "note": note,
                     "customer": { "id": "cus_1", "email": "dana@example.com" } },
        })
        .to_string();
        let client = reqwest::Client::new();
        let resp = signed_housecall_pro(
            &client,
            &format!("{}/hooks/hcp", self.daemon.url),
            HCP_SECRET,
            &body,
        )
        .send()
        .await
        .unwrap();
        assert_eq!(resp.status(), 200);
        let v: Value = resp.json().await.unwrap();
        v["stored"][0].as_str().unwrap().to_owned()
    }

    /// Polls the admin API's `path` until `done` holds (at most 30 s).
    async fn wait_until(&self, path: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let v = self.admin.get_json(path).await;
            if done(&v) {
                return v;
            }
            assert!(Instant::now() < deadline, "gave up waiting on {path}: {v}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn signed_in(&self) -> ConsoleClient {
        let mut console = ConsoleClient::new(&self.admin);
        let resp = console.login(ADMIN_TOKEN).await;
        assert_eq!(resp.status(), 303);
        assert!(console.cookie.is_some());
        console
    }
}

fn dead_deliveries(v: &Value) -> usize {
    v["dead_letters"].as_array().map_or(0, |a| {
        a.iter().filter(|d| d["topic"] == "deliveries").count()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_session_the_console_shows_nothing_and_sends_the_browser_to_the_login_form() {
    let setup = Setup::start().await;
    let id = setup
        .webhook("job.created", "job_secret_42", "private note")
        .await;
    let mut console = ConsoleClient::new(&setup.admin);
    for path in [
        "/console".to_owned(),
        "/console/events".to_owned(),
        format!("/console/events/{id}"),
        "/console/events/rows".to_owned(),
        "/console/dlq".to_owned(),
        "/console/dlq/replay".to_owned(),
        "/console/plugins".to_owned(),
        "/console/destinations".to_owned(),
    ] {
        let resp = console.get(&path).await;
        assert_eq!(resp.status(), 303, "{path}");
        assert_eq!(resp.headers()["location"], "/console/login", "{path}");
        let body = resp.text().await.unwrap();
        assert!(
            !body.contains("job_secret_42"),
            "{path} showed data: {body}"
        );
    }
    console.cookie = Some("fieldhook_console=00112233".into());
    let forged_cookie = console.get(&format!("/console/events/{id}")).await;
    assert_eq!(
        forged_cookie.status(),
        303,
        "an unknown session id is no session"
    );
    console.cookie = None;

    let wrong = console.login("not-the-admin-token-at-all").await;
    assert_eq!(wrong.status(), 401);
    assert!(console.cookie.is_none(), "no session for a wrong token");

    let right = console.login(ADMIN_TOKEN).await;
    assert_eq!(right.status(), 303);
    let set_cookie = right.headers()["set-cookie"].to_str().unwrap().to_owned();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/console"] {
        assert!(set_cookie.contains(attribute), "{set_cookie}");
    }
    assert!(
        !set_cookie.contains(ADMIN_TOKEN),
        "the token never goes into the cookie"
    );
    let page = console.page(&format!("/console/events/{id}")).await;
    assert!(page.contains("job_secret_42"));
    assert!(!page.contains(ADMIN_TOKEN), "no page shows the admin token");

    let htmx = console.get("/console/static/htmx-2.0.11.min.js").await;
    assert_eq!(htmx.status(), 200);
    assert!(
        htmx.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("max-age=31536000"),
        "htmx is served from the binary with a long cache"
    );
    assert!(htmx.text().await.unwrap().contains("htmx"));

    let csrf = csrf_in(&page);
    let out = console
        .post_form("/console/logout", &[("csrf", &csrf)], &[])
        .await;
    assert_eq!(out.status(), 303);
    let after = console.get("/console").await;
    assert_eq!(
        after.status(),
        303,
        "logged out: the old cookie no longer works"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_without_the_sessions_csrf_token_or_from_another_site_is_refused() {
    let setup = Setup::start().await;
    setup.destination.answer_with(&[500, 500]);
    setup.webhook("job.completed", "job_1", "").await;
    setup.wait_until("/dlq", |v| dead_deliveries(v) == 1).await;
    let console = setup.signed_in().await;
    let csrf = csrf_in(&console.page("/console/dlq").await);

    let no_token = console
        .post_form("/console/dlq/replay", &[("topic", "deliveries")], &[])
        .await;
    assert_eq!(no_token.status(), 403);
    let forged = console
        .post_form(
            "/console/dlq/replay",
            &[("topic", "deliveries"), ("csrf", "0123456789abcdef")],
            &[],
        )
        .await;
    assert_eq!(forged.status(), 403);
    let cross_site = console
        .post_form(
            "/console/dlq/replay",
            &[("topic", "deliveries"), ("csrf", &csrf)],
            &[
                ("origin", "http://evil.example"),
                ("sec-fetch-site", "cross-site"),
            ],
        )
        .await;
    assert_eq!(cross_site.status(), 403);
    assert_eq!(
        dead_deliveries(&setup.admin.get_json("/dlq").await),
        1,
        "nothing was replayed"
    );
    assert_eq!(setup.destination.received().len(), 2);

    let genuine = console
        .post_form(
            "/console/dlq/replay",
            &[("topic", "deliveries"), ("csrf", &csrf)],
            &[],
        )
        .await;
    assert_eq!(genuine.status(), 200);
    assert!(genuine.text().await.unwrap().contains("1 delivery"));
    let got = setup.destination.wait_for(3, Duration::from_secs(20)).await;
    assert_eq!(got.len(), 3, "the replayed delivery arrived");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_webhook_body_is_shown_as_escaped_text_under_a_strict_content_security_policy() {
    let setup = Setup::start().await;
    let id = setup
        .webhook("job.created", "job_x", "<script>alert(1)</script>")
        .await;
    let console = setup.signed_in().await;
    let resp = console.get(&format!("/console/events/{id}")).await;
    assert_eq!(resp.status(), 200);
    let csp = resp.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("default-src 'self'"), "{csp}");
    assert!(
        !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
        "{csp}"
    );
    assert_eq!(resp.headers()["x-frame-options"], "DENY");
    let page = resp.text().await.unwrap();
    assert!(
        page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "the body is shown as text"
    );
    assert!(!page.contains("<script>alert"), "the body is never markup");
    let signature = "api-signature";
    assert!(page.contains(signature), "the header is listed");
    assert!(page.contains("hidden, 64 bytes"), "its value is masked");

    for path in ["/console", "/console/events", "/console/login"] {
        let resp = console.get(path).await;
        assert!(
            resp.headers()["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("default-src 'self'"),
            "{path}"
        );
        assert_eq!(resp.headers()["x-frame-options"], "DENY", "{path}");
        let page = resp.text().await.unwrap();
        assert!(
            !page.contains("<script>") && !page.contains("style=\""),
            "{path} has no inline script or style"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_list_filters_by_source_kind_work_body_text_and_time_newest_first() {
    let setup = Setup::start().await;
    setup.destination.answer_with(&[500, 500]);
    let failed = setup.webhook("job.completed", "job_1", "").await;
    let plain = setup
        .webhook("job.created", "job_2", "ask for Ms Marple")
        .await;
    let newest = setup.webhook("job.created", "job_3", "").await;
    setup.wait_until("/dlq", |v| dead_deliveries(v) == 1).await;
    let console = setup.signed_in().await;
    let listed = |html: &str| {
        [&failed, &plain, &newest]
            .into_iter()
            .filter(|id| html.contains(id.as_str()))
            .map(String::as_str)
            .collect::<Vec<_>>()
    };
    let order = |html: &str, ids: &[&String]| {
        let at: Vec<usize> = ids
            .iter()
            .map(|id| html.find(id.as_str()).unwrap())
            .collect();
        at.windows(2).all(|w| w[0] < w[1])
    };

    let all = console.page("/console/events").await;
    assert_eq!(listed(&all).len(), 3);
    assert!(order(&all, &[&newest, &plain, &failed]), "newest first");
    assert!(
        all.contains("hx-trigger=\"every 3s\""),
        "the first page refreshes itself"
    );

    let by_kind = console.page("/console/events?kind=job.created").await;
    assert_eq!(listed(&by_kind), [plain.as_str(), newest.as_str()]);
    let by_work = console.page("/console/events?status=dead").await;
    assert_eq!(listed(&by_work), [failed.as_str()]);
    let by_text = console.page("/console/events?text=ms+marple").await;
    assert_eq!(
        listed(&by_text),
        [plain.as_str()],
        "body text, case ignored"
    );
    let by_source = console.page("/console/events?source=other").await;
    assert!(listed(&by_source).is_empty());
    let future = console.page("/console/events?from=2999-01-01T00:00").await;
    assert!(
        listed(&future).is_empty(),
        "nothing received after the `from` time"
    );
    let past = console.page("/console/events?to=2000-01-01T00:00").await;
    assert!(
        listed(&past).is_empty(),
        "nothing received before the `to` time"
    );
    let bad = console.get("/console/events?from=yesterday").await;
    assert_eq!(bad.status(), 400);

    let older = console
        .page(&format!("/console/events?before={newest}"))
        .await;
    assert_eq!(
        listed(&older),
        [failed.as_str(), plain.as_str()],
        "the cursor pages back"
    );
    assert!(!older.contains("hx-trigger"), "an older page stays still");
    let rows = console
        .page("/console/events/rows?kind=job.completed")
        .await;
    assert!(
        rows.starts_with("<tbody") && rows.contains(failed.as_str()),
        "{rows}"
    );
}

fn unix_minute() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 60
}

/// Each minute's `[received, delivered, failed]` from the overview's chart
/// (its `<title>`s), oldest first.
fn chart_minutes(html: &str) -> Vec<[u64; 3]> {
    html.split("<g class=\"minute")
        .skip(1)
        .map(|g| {
            let title = &g[g.find("<title>").unwrap()..g.find("</title>").unwrap()];
            let n = |label: &str| -> u64 {
                let rest = &title[title.find(label).unwrap() + label.len()..];
                rest.split(|c: char| !c.is_ascii_digit())
                    .next()
                    .unwrap()
                    .parse()
                    .unwrap()
            };
            [n("received "), n("delivered "), n("failed ")]
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_overview_charts_this_minutes_webhooks_deliveries_and_failures_as_inline_svg() {
    let setup = Setup::start().await;
    let console = setup.signed_in().await;
    let before = chart_minutes(&console.page("/console").await);
    assert_eq!(
        before.len(),
        60,
        "one bar group per minute of the last hour"
    );
    assert!(before.iter().all(|m| *m == [0, 0, 0]), "{before:?}");

    let started = unix_minute();
    // The first delivery fails once, then goes through on its retry.
    setup.destination.answer_with(&[500]);
    for job in ["job_a", "job_b", "job_c"] {
        setup.webhook("job.completed", job, "").await;
    }
    setup.webhook("job.created", "job_d", "").await;
    setup
        .wait_until("/stats", |v| v["tasks"]["deliveries"]["done"] == 3)
        .await;
    let page = console.page("/console").await;
    let minutes = chart_minutes(&page);
    assert_eq!(minutes.len(), 60);
    // The counts sit in this minute's bucket (or, when the test crossed a
    // minute, in the last two).
    let spread = usize::try_from(unix_minute() - started).unwrap() + 1;
    let mut seen = [0; 3];
    for m in &minutes[60 - spread..] {
        for (s, n) in seen.iter_mut().zip(m) {
            *s += n;
        }
    }
    assert_eq!(seen, [4, 3, 1], "received, delivered, failed: {minutes:?}");
    assert!(
        page.contains("<svg class=\"chart per-minute\""),
        "an inline SVG"
    );
    let svg = &page[page.find("<svg class=\"chart per-minute\"").unwrap()..];
    let svg = &svg[..svg.find("</svg>").unwrap()];
    for forbidden in [
        "<script",
        "<style",
        "style=",
        "onload",
        "onclick",
        "onmouse",
        "javascript:",
    ] {
        assert!(!svg.contains(forbidden), "{forbidden} in the chart: {svg}");
    }
    assert!(svg.contains("class=\"minute now\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugins_show_their_recent_errors_and_destinations_their_recent_failures() {
    let setup = Setup::start().await;
    let console = setup.signed_in().await;
    let plugins = console.page("/console/plugins").await;
    assert!(plugins.contains("None among recent jobs."), "{plugins}");
    let destinations = console.page("/console/destinations").await;
    assert!(
        destinations.contains("None among recent deliveries."),
        "{destinations}"
    );

    // A delivery that fails twice and gives up; a job the plugin refuses.
    setup.destination.answer_with(&[503, 503]);
    let delivered = setup.webhook("job.completed", "job_1", "").await;
    let body = serde_json::json!({
        "event": "job.completed",
        "event_occurred_at": "2026-11-20T15:04:05Z",
        "job": { "note": "<b>no id</b>" },
    })
    .to_string();
    let resp = signed_housecall_pro(
        &reqwest::Client::new(),
        &format!("{}/hooks/hcp", setup.daemon.url),
        HCP_SECRET,
        &body,
    )
    .send()
    .await
    .unwrap();
    assert_eq!(resp.status(), 200);
    let refused: Value = resp.json().await.unwrap();
    let refused = refused["stored"][0].as_str().unwrap().to_owned();
    setup
        .wait_until("/dlq", |v| {
            v["dead_letters"].as_array().is_some_and(|a| a.len() == 2)
        })
        .await;

    let plugins = console.page("/console/plugins").await;
    let errors = &plugins[plugins.find("Recent errors").unwrap()..];
    assert!(errors.contains("job object has no `id`"), "{errors}");
    assert!(
        errors.contains(&format!("/console/events/{refused}")),
        "{errors}"
    );
    assert!(
        !errors.contains(&delivered),
        "a delivered job is no error: {errors}"
    );

    let destinations = console.page("/console/destinations").await;
    let failures = &destinations[destinations.find("Recent failures").unwrap()..];
    assert!(failures.contains("127.0.0.1"), "{failures}");
    assert_eq!(
        failures.matches("<td>503</td>").count(),
        2,
        "both attempts, with the status answered: {failures}"
    );
    assert!(failures.contains(&format!("/console/events/{delivered}#deliveries")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_filter_reads_a_bounded_number_of_events_and_offers_to_go_on() {
    let setup = Setup::start().await;
    let oldest = setup.webhook("job.created", "job_0", "the needle").await;
    for i in 1..8 {
        setup
            .webhook("job.created", &format!("job_{i}"), "hay")
            .await;
    }
    let console = setup.signed_in().await;

    let whole = console.page("/console/events?text=needle").await;
    assert!(
        whole.contains(&oldest),
        "under the default bound it is found"
    );
    assert!(!whole.contains("Searched "), "{whole}");

    // `scan` may only lower the bound (5,000): read 5 of the 8.
    let first = console.page("/console/events?text=needle&scan=5").await;
    assert!(!first.contains(&oldest), "{first}");
    assert!(first.contains("Searched 5 events back to "), "{first}");
    assert!(first.contains("narrow the time range or"), "{first}");
    let at = first.find("class=\"go-on\" href=\"").unwrap() + "class=\"go-on\" href=\"".len();
    let go_on = first[at..first[at..].find('"').unwrap() + at].replace("&amp;", "&");
    assert!(
        go_on.contains("text=needle") && go_on.contains("scan=5") && go_on.contains("before=evt_"),
        "{go_on}"
    );
    let next = console.page(&go_on).await;
    assert!(next.contains(&oldest), "going on finds it: {next}");
    assert!(!next.contains("Searched "), "the rest was read to its end");

    assert_eq!(console.get("/console/events?scan=0").await.status(), 400);
    assert_eq!(console.get("/console/events?scan=lots").await.status(), 400);
    let capped = console
        .page("/console/events?text=needle&scan=999999999")
        .await;
    assert!(
        capped.contains(&oldest),
        "a larger number is held to the bound"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_wrong_tokens_from_one_address_make_it_wait_a_minute_even_with_the_right_one() {
    let setup = Setup::start().await;
    let mut console = ConsoleClient::new(&setup.admin);
    for attempt in 1..=5 {
        let wrong = console.login("not-the-admin-token-at-all").await;
        assert_eq!(wrong.status(), 401, "attempt {attempt}");
    }
    let refused = console.login(ADMIN_TOKEN).await;
    assert_eq!(refused.status(), 429, "the sixth, within the minute");
    let wait: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "Retry-After: {wait}");
    assert!(console.cookie.is_none(), "no session while limited");
    assert!(
        refused
            .text()
            .await
            .unwrap()
            .contains("Too many wrong tokens")
    );

    let mut elsewhere = ConsoleClient::from_address(&setup.admin, "127.0.0.2".parse().unwrap());
    assert_eq!(
        elsewhere.login(ADMIN_TOKEN).await.status(),
        303,
        "another address is not held back"
    );

    // The minute passes: the right token works again.
    tokio::time::sleep(Duration::from_secs(wait)).await;
    assert_eq!(console.login(ADMIN_TOKEN).await.status(), 303);
    assert_eq!(console.get("/console").await.status(), 200);
}

/// Where the browser test saves what it saw.
fn screenshots_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
        .join("console-screenshots")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_signs_in_filters_events_opens_one_and_replays_dead_letters_in_a_browser() {
    let setup = Setup::start().await;
    setup.destination.answer_with(&[500, 500]);
    let completed = setup.webhook("job.completed", "job_7f3e", "").await;
    setup.webhook("job.created", "job_other", "").await;
    setup.wait_until("/dlq", |v| dead_deliveries(v) == 1).await;

    let browser = Browser::start().await;
    let c = &browser.client;
    let base = &setup.admin.url;

    // Signing in.
    c.goto(&format!("{base}/console/events")).await.unwrap();
    assert!(
        c.current_url()
            .await
            .unwrap()
            .as_str()
            .ends_with("/console/login")
    );
    browser.screenshot("1-login").await;
    c.find(Locator::Css("#token"))
        .await
        .unwrap()
        .send_keys(ADMIN_TOKEN)
        .await
        .unwrap();
    c.find(Locator::Css("form.login button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser.wait_for("section.cards").await;
    let cards = browser.text("section.cards").await;
    assert!(cards.contains("Dead letters"), "{cards}");
    browser.screenshot("2-overview").await;

    // The event list, filtered by kind.
    c.goto(&format!("{base}/console/events")).await.unwrap();
    let all = browser.text("#event-rows").await;
    assert!(
        all.contains("job.completed") && all.contains("job.created"),
        "{all}"
    );
    c.find(Locator::Css("input[name=kind]"))
        .await
        .unwrap()
        .send_keys("job.completed")
        .await
        .unwrap();
    c.find(Locator::Css("form.filters button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !c
        .current_url()
        .await
        .unwrap()
        .as_str()
        .contains("kind=job.completed")
    {
        assert!(Instant::now() < deadline, "the filter form was not sent");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let filtered = browser.text("#event-rows").await;
    assert!(filtered.contains("job.completed"), "{filtered}");
    assert!(!filtered.contains("job.created"), "{filtered}");
    assert!(
        filtered.contains("dead"),
        "the event's delivery is dead: {filtered}"
    );
    browser.screenshot("3-events-filtered").await;

    // The live list: a new webhook shows up without a reload (htmx polling).
    c.goto(&format!("{base}/console/events")).await.unwrap();
    setup.webhook("job.scheduled", "job_live", "").await;
    let deadline = Instant::now() + Duration::from_secs(15);
    while !browser.text("#event-rows").await.contains("job.scheduled") {
        assert!(Instant::now() < deadline, "the list did not refresh itself");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // One event.
    c.goto(&format!("{base}/console/events?kind=job.completed"))
        .await
        .unwrap();
    c.find(Locator::Css("#event-rows a"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser.wait_for("pre.body").await;
    assert!(
        c.current_url()
            .await
            .unwrap()
            .as_str()
            .ends_with(&completed)
    );
    let headers = browser.text("table.headers").await;
    assert!(
        headers.contains("api-signature") && headers.contains("hidden"),
        "{headers}"
    );
    let attempts = browser.text("section.task:last-of-type").await;
    assert!(attempts.contains("dead"), "{attempts}");
    browser.screenshot("4-event").await;
    let event_url = c.current_url().await.unwrap();
    c.goto(&format!("{event_url}#deliveries")).await.unwrap();
    browser.screenshot("4b-event-attempts").await;

    // Dead letters: filter, see the count, replay.
    c.goto(&format!("{base}/console/dlq")).await.unwrap();
    c.find(Locator::Css("select[name=topic] option[value=deliveries]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.find(Locator::Css("form.filters button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser.wait_for("table.dlq").await;
    browser.screenshot("5-dead-letters").await;
    c.find(Locator::Css("#review-replay"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser.wait_for("#replay-count").await;
    let count = browser.text("#replay-count").await;
    assert!(
        count.contains("1 dead letter(s): 0 job(s) and 1 delivery"),
        "{count}"
    );
    assert_eq!(
        setup.destination.received().len(),
        2,
        "nothing replayed yet"
    );
    browser.screenshot("6-replay-confirm").await;
    c.find(Locator::Css("#confirm-replay"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser.wait_for("#replay-result").await;
    assert!(browser.text("#replay-result").await.contains("1 delivery"));
    browser.screenshot("7-replayed").await;
    let got = setup.destination.wait_for(3, Duration::from_secs(20)).await;
    assert_eq!(got.len(), 3, "the replayed delivery arrived");
    assert_eq!(got[2].path, "/books/jobs");
    let body: Value = serde_json::from_slice(&got[2].body).unwrap();
    assert_eq!(body["fieldhook_event_id"], completed.as_str());

    // Plugins and destinations.
    c.goto(&format!("{base}/console/plugins")).await.unwrap();
    let plugin = browser.text("section.plugin").await;
    assert!(
        plugin.contains("accounting-sync") && plugin.contains("fieldhook:plugin@"),
        "{plugin}"
    );
    browser.screenshot("8-plugins").await;
    c.goto(&format!("{base}/console/destinations"))
        .await
        .unwrap();
    let destinations = browser.text("table.destinations").await;
    assert!(destinations.contains("127.0.0.1"), "{destinations}");
    browser.screenshot("9-destinations").await;
    c.goto(&format!("{base}/console")).await.unwrap();
    browser.screenshot("10-overview-after").await;

    eprintln!("screenshots in {}", screenshots_dir().display());
    browser.close().await;
    let _ = &setup.dir;
}
