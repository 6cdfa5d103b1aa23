//! Validator tokens: they expire and are renewed without a lock-out, and a copy used beside
//! the real validator ends it rather than taking it over.

use super::world::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validator_tokens_expire_and_renew_without_a_lock_out() {
    let w = World::start().await;
    let (bus_vault, _, _) = w.bus("bus", 32).await;
    let registration = || BackendClient::registration(&bus_vault).unwrap().unwrap();
    let enrolled = registration();
    let now = now();
    let expires = enrolled.token_expires_at.unwrap();
    assert!(expires > now + 29 * 86_400 && expires <= now + 30 * 86_400 + 60);
    let http = w.http.clone();
    let feed = |token: String| {
        let (http, url) = (http.clone(), w.url("/v1/transit/feed"));
        async move {
            http.get(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    let renew = |token: String| {
        let (http, url) = (http.clone(), w.url("/v1/transit/validators/token"));
        async move {
            let r = http.post(url).bearer_auth(token).send().await.unwrap();
            let status = r.status().as_u16();
            let body: Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
            (
                status,
                body["token"].as_str().unwrap_or_default().to_owned(),
            )
        }
    };
    let old = enrolled.token.clone();
    // A renewal whose answer is lost (the validator never stores t1) ...
    let (status, t1) = renew(old.clone()).await;
    assert_eq!(status, 200);
    // ... is no lock-out: the old token is still honoured, and renewing with it again
    // replaces the token that never arrived.
    assert_eq!(feed(old.clone()).await, 200);
    let (status, t2) = renew(old.clone()).await;
    assert_eq!(status, 200);
    assert_eq!(feed(t1.clone()).await, 401, "the lost token is replaced");
    assert_eq!(feed(old.clone()).await, 200, "t2 not used yet");
    // The validator uses t2: it has it, so the old token is nobody's to hold (a copy of it
    // presented now is the next test's).
    assert_eq!(feed(t2.clone()).await, 200);
    assert_eq!(feed(t2.clone()).await, 200);
    // Renewed again, the previous token serves until the new one is used.
    let (status, t3) = renew(t2.clone()).await;
    assert_eq!(status, 200);
    assert_eq!((feed(t2.clone()).await, feed(t3.clone()).await), (200, 200));
    // Nobody renews with a token it does not hold.
    assert_eq!(renew("made-up".into()).await.0, 401);
    assert_eq!(renew(t1).await.0, 401);

    // The validator renews by itself when its token nears its end: its feed fetch does it.
    let due = thudo_core::sync::client::Registration {
        token: t3.clone(),
        token_expires_at: Some(now + 86_400),
        ..registration()
    };
    bus_vault.put_doc(&due).unwrap();
    w.transit().validator_feed(bus_vault.clone()).await.unwrap();
    let renewed = registration();
    assert_ne!(renewed.token, t3);
    assert!(renewed.token_expires_at.unwrap() > now + 29 * 86_400);
    // And not again while it is far from its end.
    w.transit().validator_feed(bus_vault.clone()).await.unwrap();
    assert_eq!(registration().token, renewed.token);

    // Two feed fetches at once, the token due: one renews, the other finds it renewed, and
    // the token stored is the one the backend holds.
    let due = thudo_core::sync::client::Registration {
        token_expires_at: Some(now + 86_400),
        ..registration()
    };
    bus_vault.put_doc(&due).unwrap();
    let (a, b) = tokio::join!(
        w.transit().validator_feed(bus_vault.clone()),
        w.transit().validator_feed(bus_vault.clone())
    );
    a.unwrap();
    b.unwrap();
    let stored = registration();
    assert_ne!(stored.token, due.token);
    assert_eq!(feed(stored.token.clone()).await, 200);
    let renewed = stored;
    // A token past its end is refused (renewed here into one already expired).
    let expired = "expired-token-0123456789";
    assert!(w
        .storage
        .renew_validator_token(
            &thudo_server::storage::sha256(renewed.token.as_bytes()),
            &thudo_server::storage::sha256(expired.as_bytes()),
            now as i64 - 1,
            now as i64,
        )
        .unwrap());
    assert_eq!(feed(expired.into()).await, 401);
    assert_eq!(renew(expired.into()).await.0, 401);
}

/// A copy of a validator's token (a backup, a thief at the depot) is used beside the real
/// one. Whichever renews first, a token presented after its successor was used, or after it
/// was replaced before its first use, past the window in which the client may still be
/// retrying a call begun with it, shows two holders who cannot be told apart: the validator
/// is decommissioned (403 `decommissioned` for both), never silently taken over, and the
/// operator enrols the real one again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copied_validator_token_used_beside_the_real_one_ends_the_validator() {
    use thudo_server::transit::store::VALIDATOR_RETRY_WINDOW_SECS;
    let w = World::start().await;
    let http = w.http.clone();
    let call = |path: &'static str, token: String| {
        let (http, url) = (http.clone(), w.url(path));
        async move {
            let r = if path.ends_with("/token") {
                http.post(url).bearer_auth(token).send().await.unwrap()
            } else {
                http.get(url).bearer_auth(token).send().await.unwrap()
            };
            let status = r.status().as_u16();
            let body: Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
            (status, body)
        }
    };
    let feed = |token: String| call("/v1/transit/feed", token);
    let renew = |token: String| call("/v1/transit/validators/token", token);
    let decommissioned = |(status, body): (u16, Value)| {
        assert_eq!(
            (status, body["error"].as_str()),
            (403, Some("decommissioned"))
        )
    };
    // The old token presented once the retries' window is over.
    let after_the_window = |token: &str| {
        w.storage
            .validator_by_token(
                &thudo_server::storage::sha256(token.as_bytes()),
                now() as i64 + VALIDATOR_RETRY_WINDOW_SECS + 1,
            )
            .unwrap()
    };

    // The copy renews first and uses its new token; the real validator calls with its own.
    let (bus, _, _) = w.bus("bus-copied", 32).await;
    let real = BackendClient::registration(&bus).unwrap().unwrap().token;
    let (status, body) = renew(real.clone()).await;
    assert_eq!(status, 200);
    let thief = body["token"].as_str().unwrap().to_owned();
    assert_eq!(feed(thief.clone()).await.0, 200);
    // Within the window it may be a retry of a call begun before the renewal: refused only.
    assert_eq!(feed(real.clone()).await.0, 401);
    assert_eq!(feed(thief.clone()).await.0, 200);
    let ended = after_the_window(&real).expect("the old token names its validator");
    assert!(ended.decommissioned_at.is_some());
    decommissioned(feed(thief.clone()).await);
    decommissioned(renew(thief).await);
    decommissioned(feed(real).await);
    assert!(matches!(
        w.transit().validator_feed(bus.clone()).await,
        Err(BackendError::Refused { status: 403, .. })
    ));

    // The real validator renews and uses its new token; a copy of the old one turns up.
    let (bus, _, _) = w.bus("bus-backup", 32).await;
    let kept = BackendClient::registration(&bus).unwrap().unwrap().token;
    w.transit().validator_feed(bus.clone()).await.unwrap();
    let (status, body) = renew(kept.clone()).await;
    assert_eq!(status, 200);
    let current = body["token"].as_str().unwrap().to_owned();
    assert_eq!(feed(current.clone()).await.0, 200);
    assert_eq!(renew(kept.clone()).await.0, 401);
    assert_eq!(feed(current.clone()).await.0, 200, "a retry ends nothing");
    assert!(after_the_window(&kept).unwrap().decommissioned_at.is_some());
    decommissioned(feed(current).await);
    // The real validator renews and holds its new token, not used yet; a copy of the old one
    // renews after it, as a retry of a lost answer would, and takes the new one's place. The
    // validator presenting the token it was given, past the retries' window, ends it.
    let (bus, _, _) = w.bus("bus-late-copy", 32).await;
    let before = BackendClient::registration(&bus).unwrap().unwrap().token;
    let (_, body) = renew(before.clone()).await;
    let given = body["token"].as_str().unwrap().to_owned();
    let (status, body) = renew(before.clone()).await;
    assert_eq!(status, 200);
    let taken = body["token"].as_str().unwrap().to_owned();
    assert_eq!(feed(taken.clone()).await.0, 200);
    assert_eq!(
        feed(given.clone()).await.0,
        401,
        "a retry's window: refused only"
    );
    assert!(after_the_window(&given)
        .unwrap()
        .decommissioned_at
        .is_some());
    decommissioned(feed(taken).await);
    // A token nobody replaced, or one still in its grace, names no copy; nor did the first
    // validator's end touch another.
    let (other, _, _) = w.bus("bus-other", 32).await;
    let its = BackendClient::registration(&other).unwrap().unwrap().token;
    assert!(after_the_window("made-up").is_none());
    let (_, body) = renew(its.clone()).await;
    assert!(body["token"].is_string());
    w.storage
        .validator_by_token(
            &thudo_server::storage::sha256(its.as_bytes()),
            now() as i64 + VALIDATOR_RETRY_WINDOW_SECS + 1,
        )
        .unwrap()
        .filter(|v| v.decommissioned_at.is_none())
        .expect("in its grace, the old token still serves");
}
