//! Payments whose notification never came: the provider gives up retrying its notification
//! after a while, and a backend down for those minutes never hears that a rider paid. Every
//! few minutes one instance asks the provider's query API about the orders whose checkout is
//! over and that are not paid (awaiting payment, under review, failed or cancelled: a later
//! try may have paid), made in the last two days, each on a backoff, and records a signed
//! answer as the notification would have been recorded: the pass opens, the failure is noted,
//! or a payment learnt too late is entered as owed back (`SalesStore::record_payment`).

use std::time::Duration;

use crate::payments::{Acknowledgement, NotificationError, OrderQuery, QueryAnswer};
use crate::storage::settings::SettingsStore;
use crate::transit::TransitState;

/// How often a round starts.
pub const FOLLOW_UP_EVERY: Duration = Duration::from_secs(5 * 60);
/// How far back: an order older than this is the operator's (the day's reconciliation).
pub const FOLLOW_UP_SECS: i64 = 2 * 86_400;
/// Orders asked about in one round (the oldest due first; the rest wait for the next).
pub const FOLLOW_UP_BATCH: u32 = 200;
/// When an order is asked about again after its `n`th question (then once a day).
const BACKOFF_SECS: [i64; 4] = [5 * 60, 15 * 60, 3600, 6 * 3600];
/// A checkout the provider still holds no transaction of this long after its end was never
/// paid: not asked about again.
const NEVER_PAID_AFTER_SECS: i64 = 5 * 60;
/// The longest answer read (a real one is under 1 KB).
const MAX_ANSWER_BYTES: usize = 4 * 1024;
/// The setting that gives one instance the round: `until:instance`.
const TURN_KEY: &str = "payments_follow_up_turn";
/// How long a round may ask: it ends before its turn does, so no other instance asks the
/// same meanwhile.
const ROUND_SECS: i64 = FOLLOW_UP_EVERY.as_secs() as i64 - 60;

/// What one round did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FollowUp {
    /// Orders asked about.
    pub asked: usize,
    /// Answers recorded as new (a payment, a failure, a review).
    pub recorded: usize,
    /// Orders the provider had nothing new on (no transaction yet, one under way, or an
    /// outcome already recorded).
    pub unchanged: usize,
    /// Questions that failed (the network, the provider's refusal, an answer refused as
    /// forged or malformed): asked again on the backoff.
    pub failed: usize,
}

/// When to ask again after the `asked`th question at `now`.
fn next_ask(asked: u32, now: i64) -> i64 {
    let wait = BACKOFF_SECS
        .get(asked.saturating_sub(1) as usize)
        .copied()
        .unwrap_or(86_400);
    now + wait
}

/// Whether this instance (`me`) takes the round starting `now`: one instance a round, so the
/// provider is not asked the same thing by every instance. A turn held by another instance
/// is waited out, unless it ends implausibly far ahead (that instance's clock was wrong).
fn take_turn(storage: &dyn SettingsStore, me: &str, now: i64) -> bool {
    let every = FOLLOW_UP_EVERY.as_secs() as i64;
    let until = now + every - 30;
    let mine = format!("{until}:{me}");
    let taken = storage.update_setting(TURN_KEY, &mut |current| {
        let held = current
            .as_deref()
            .and_then(|v| std::str::from_utf8(v).ok())
            .and_then(|v| v.split_once(':'))
            .and_then(|(until, who)| Some((until.parse::<i64>().ok()?, who.to_owned())));
        Ok(match held {
            Some((until, who)) if until > now && until <= now + 2 * every && who != me => {
                current.unwrap_or_default()
            }
            _ => mine.clone().into_bytes(),
        })
    });
    match taken {
        Ok(value) => value == mine.as_bytes(),
        Err(e) => {
            eprintln!("warning: payments follow-up: no turn ({e})");
            false
        }
    }
}

/// Asks the provider at `query_url` about every order due (see the module), as instance
/// `me` for the round at `now`; `None` when another instance has this round.
pub async fn follow_up_payments(
    state: &TransitState,
    http: &reqwest::Client,
    query_url: &str,
    me: &str,
    now: i64,
) -> Result<Option<FollowUp>, crate::http::ApiError> {
    let storage = state.storage.clone();
    let who = me.to_owned();
    let turn = crate::http::blocking(move || Ok(take_turn(storage.as_ref(), &who, now))).await?;
    if !turn {
        return Ok(None);
    }
    let storage = state.storage.clone();
    let due = crate::http::blocking(move || {
        Ok(storage.orders_to_follow_up(now - FOLLOW_UP_SECS, now, FOLLOW_UP_BATCH)?)
    })
    .await?;
    let started = std::time::Instant::now();
    let mut round = FollowUp::default();
    for (record, asked_before) in due {
        if started.elapsed().as_secs() as i64 > ROUND_SECS {
            break;
        }
        round.asked += 1;
        let order = &record.order;
        let asked = asked_before.saturating_add(1);
        let mut next_at = Some(next_ask(asked, now));
        let request_id = crate::http::random_token()?;
        let body = state.payments.provider.query_request(&OrderQuery {
            order_id: &order.id,
            created_at: order.created_at,
            now: chrono::Utc::now().timestamp(),
            request_id: &request_id[..32.min(request_id.len())],
        });
        let answer = match ask(http, query_url, &body).await {
            Ok(bytes) => state.payments.provider.read_query_answer(&order.id, &bytes),
            Err(why) => Err(NotificationError::Malformed(why)),
        };
        match answer {
            Ok(QueryAnswer::Known(notification)) => {
                match super::sales::record_notification(state, notification).await {
                    Acknowledgement::Recorded => round.recorded += 1,
                    Acknowledgement::AlreadyRecorded => round.unchanged += 1,
                    other => {
                        eprintln!(
                            "warning: payments follow-up: order {}'s answer not recorded ({other:?})",
                            order.id
                        );
                        round.failed += 1;
                    }
                }
            }
            Ok(QueryAnswer::NotFound) => {
                round.unchanged += 1;
                if now >= order.expires_at + NEVER_PAID_AFTER_SECS {
                    next_at = None;
                }
            }
            Ok(QueryAnswer::NothingYet) => round.unchanged += 1,
            Err(e) => {
                // A forged answer, a refusal (a wrong secret or terminal: the configuration)
                // or the network: the operator must hear of it. Not the answer itself.
                eprintln!("warning: payments follow-up: order {}: {e}", order.id);
                round.failed += 1;
            }
        }
        let storage = state.storage.clone();
        let id = order.id.clone();
        crate::http::blocking(move || Ok(storage.followed_up(&id, asked, next_at)?)).await?;
    }
    Ok(Some(round))
}

/// POSTs `body` to `url`; the answer's bytes, at most [`MAX_ANSWER_BYTES`]. The error says
/// what failed in a few words (never the answer: it is not logged).
async fn ask(
    http: &reqwest::Client,
    url: &str,
    body: &serde_json::Value,
) -> Result<Vec<u8>, String> {
    let mut response = http
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .map_err(|_| "no answer from the query API".to_owned())?;
    if !response.status().is_success() {
        return Err(format!(
            "the query API answered {}",
            response.status().as_u16()
        ));
    }
    let mut bytes = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|_| "the answer was cut short".to_owned())?
    {
        bytes.extend_from_slice(&chunk);
        if bytes.len() > MAX_ANSWER_BYTES {
            return Err("the answer is too large".to_owned());
        }
    }
    Ok(bytes)
}

/// Runs a round every [`FOLLOW_UP_EVERY`] for as long as the server runs (`start` spawns it
/// when the provider has a query URL).
pub(crate) async fn keep_following_up(state: TransitState, query_url: String) {
    let me = match crate::http::random_token() {
        Ok(token) => token,
        Err(_) => return,
    };
    let http = match crate::http::outbound_client(&query_url, Duration::from_secs(10)) {
        Ok(client) => client,
        Err(e) => {
            eprintln!("warning: payments are not followed up: {e}");
            return;
        }
    };
    let mut every = tokio::time::interval(FOLLOW_UP_EVERY);
    // A round that ran long is not made up for by rounds back to back.
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let now = chrono::Utc::now().timestamp();
        match follow_up_payments(&state, &http, &query_url, &me, now).await {
            Ok(Some(round)) if round.recorded > 0 || round.failed > 0 => eprintln!(
                "payments follow-up: asked about {} orders, {} recorded, {} failed",
                round.asked, round.recorded, round.failed
            ),
            Ok(_) => {}
            Err(e) => eprintln!("warning: following up payments failed: {}", e.message()),
        }
    }
}
