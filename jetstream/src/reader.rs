//! Reading a replicated stream back.

use crate::runtime::connect;
use crate::wire;
use crate::ReplicationError;
use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy};
use async_nats::HeaderMap;
use batpak::prelude::{Coordinate, EventKind};
use futures_util::StreamExt;
use std::time::{Duration, Instant};

/// One replicated event as the stream holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicatedMessage {
    /// Its sequence in the JetStream stream.
    pub stream_sequence: u64,
    /// The subject it was published to.
    pub subject: String,
    /// The event id (`Nats-Msg-Id`).
    pub event_id: u128,
    /// The global sequence in the source store.
    pub sequence: u64,
    /// The kind.
    pub kind: EventKind,
    /// The correlation id.
    pub correlation_id: u128,
    /// The causation id.
    pub causation_id: Option<u128>,
    /// The coordinate.
    pub coordinate: Coordinate,
    /// The entity clock in the source store.
    pub clock: u32,
    /// The caller's header flags (0 when the message carries none).
    pub flags: u8,
    /// The atomic batch the event was written in (its first event's global sequence);
    /// `None` for an event written alone, or a message from before batches were marked.
    pub batch: Option<u64>,
    /// Whether this is the last message of its batch.
    pub batch_end: bool,
    /// The payload's MessagePack bytes.
    pub payload: Vec<u8>,
}

fn header<'a>(h: &'a HeaderMap, name: &str, seq: u64) -> Result<&'a str, ReplicationError> {
    h.get(name)
        .map(|v| v.as_str())
        .ok_or_else(|| ReplicationError::Malformed {
            stream_sequence: seq,
            detail: format!("no {name} header"),
        })
}

fn bad(seq: u64, name: &str, value: &str) -> ReplicationError {
    ReplicationError::Malformed {
        stream_sequence: seq,
        detail: format!("header {name} = {value:?} does not parse"),
    }
}

impl ReplicatedMessage {
    /// Parses a message of the stream (its headers as [`wire`] lists them).
    pub(crate) fn parse(
        stream_sequence: u64,
        subject: &str,
        headers: Option<&HeaderMap>,
        payload: &[u8],
    ) -> Result<Self, ReplicationError> {
        let seq = stream_sequence;
        let Some(h) = headers else {
            return Err(ReplicationError::Malformed {
                stream_sequence: seq,
                detail: "no headers".into(),
            });
        };
        let id = |name: &str| -> Result<u128, ReplicationError> {
            let v = header(h, name, seq)?;
            wire::parse_id(v).ok_or_else(|| bad(seq, name, v))
        };
        let num = |name: &str| -> Result<u64, ReplicationError> {
            let v = header(h, name, seq)?;
            v.parse::<u64>().map_err(|_| bad(seq, name, v))
        };
        let text = |name: &str| -> Result<String, ReplicationError> {
            let v = header(h, name, seq)?;
            wire::unescape(v).ok_or_else(|| bad(seq, name, v))
        };
        let causation_id = match h.get(wire::CAUSATION) {
            Some(v) => Some(
                wire::parse_id(v.as_str()).ok_or_else(|| bad(seq, wire::CAUSATION, v.as_str()))?,
            ),
            None => None,
        };
        let opt_num = |name: &str| -> Result<Option<u64>, ReplicationError> {
            match h.get(name) {
                Some(v) => v
                    .as_str()
                    .parse::<u64>()
                    .map(Some)
                    .map_err(|_| bad(seq, name, v.as_str())),
                None => Ok(None),
            }
        };
        let flags = u8::try_from(opt_num(wire::FLAGS)?.unwrap_or(0))
            .map_err(|_| bad(seq, wire::FLAGS, "out of range"))?;
        let batch = opt_num(wire::BATCH)?;
        let batch_end = match h.get(wire::BATCH_END).map(|v| v.as_str()) {
            None => false,
            Some("1") if batch.is_some() => true,
            Some(v) => return Err(bad(seq, wire::BATCH_END, v)),
        };
        let kind =
            u16::try_from(num(wire::KIND)?).map_err(|_| bad(seq, wire::KIND, "out of range"))?;
        let clock =
            u32::try_from(num(wire::CLOCK)?).map_err(|_| bad(seq, wire::CLOCK, "out of range"))?;
        let coordinate = Coordinate::new(text(wire::ENTITY)?, text(wire::SCOPE)?).map_err(|e| {
            ReplicationError::Malformed {
                stream_sequence: seq,
                detail: format!("coordinate: {e}"),
            }
        })?;
        Ok(Self {
            stream_sequence,
            subject: subject.to_string(),
            event_id: id(wire::MSG_ID)?,
            sequence: num(wire::SEQUENCE)?,
            kind: EventKind::from_raw(kind),
            correlation_id: id(wire::CORRELATION)?,
            causation_id,
            coordinate,
            clock,
            flags,
            batch,
            batch_end,
            payload: payload.to_vec(),
        })
    }
}

/// Reads every message of `stream` in stream order (through an ephemeral consumer), retrying
/// while NATS is unavailable, for at most `timeout`.
pub fn read_replicated(
    servers: &[String],
    stream: &str,
    timeout: Duration,
) -> Result<Vec<ReplicatedMessage>, ReplicationError> {
    let link = connect(servers, "batpak-reader", Duration::from_secs(5))?;
    let deadline = Instant::now() + timeout;
    loop {
        let js = link.js.clone();
        let attempt = link
            .rt
            .block_on(read_all(js, stream.to_string(), deadline, timeout));
        match attempt {
            Err(e) if e.is_transient() && Instant::now() < deadline => {
                tracing::debug!(error = %e, "read_replicated: retrying");
                std::thread::sleep(Duration::from_millis(200));
            }
            other => return other,
        }
    }
}

async fn read_all(
    js: async_nats::jetstream::Context,
    stream: String,
    deadline: Instant,
    timeout: Duration,
) -> Result<Vec<ReplicatedMessage>, ReplicationError> {
    let s = js
        .get_stream(&stream)
        .await
        .map_err(|e| ReplicationError::nats("get the stream", e))?;
    let info = s
        .get_info()
        .await
        .map_err(|e| ReplicationError::nats("stream info", e))?;
    let (last, count) = (info.state.last_sequence, info.state.messages);
    let mut out = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
    if count == 0 {
        return Ok(out);
    }
    let consumer = s
        .create_consumer(pull::Config {
            deliver_policy: DeliverPolicy::All,
            ack_policy: AckPolicy::None,
            inactive_threshold: Duration::from_secs(30),
            ..Default::default()
        })
        .await
        .map_err(|e| ReplicationError::nats("create a reading consumer", e))?;
    let mut seen_last = 0u64;
    while seen_last < last {
        if Instant::now() >= deadline {
            return Err(ReplicationError::Timeout {
                what: "reading the stream",
                after: timeout,
            });
        }
        let mut batch = consumer
            .fetch()
            .max_messages(1000)
            .expires(Duration::from_millis(500))
            .messages()
            .await
            .map_err(|e| ReplicationError::nats("fetch", e))?;
        while let Some(m) = batch.next().await {
            let m = m.map_err(|e| ReplicationError::nats("fetch", e))?;
            let seq = m
                .info()
                .map_err(|e| ReplicationError::nats("message info", e))?
                .stream_sequence;
            out.push(ReplicatedMessage::parse(
                seq,
                m.subject.as_str(),
                m.headers.as_ref(),
                &m.payload,
            )?);
            seen_last = seq;
        }
    }
    Ok(out)
}
