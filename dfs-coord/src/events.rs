//! The coordinator's recent events: nodes going down and coming back, repairs starting
//! and finishing, corruption reports, garbage collection, drains. The cluster view
//! (`view.rs`) shows them.
//!
//! The log already says all of this, but a log is a file on the coordinator's machine; a
//! person watching the cluster wants the last few things that happened next to the
//! current state. So the places that log a state change also [`Events::record`] it here,
//! in a ring buffer of the last [`CAPACITY`] events: memory stays bounded however long the
//! coordinator runs, and nothing is persisted (after a restart the log is the history).

use crate::status::json_string;
use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// Events kept; older ones are dropped first.
pub const CAPACITY: usize = 200;

/// What kind of change an event is, so the page can colour it without parsing text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// A node registered for the first time or came back.
    NodeUp,
    /// A node stopped sending heartbeats.
    NodeDown,
    /// Repair found under-replicated shards and started copying.
    RepairStarted,
    /// A repair episode ended: every shard has its copies again.
    RepairFinished,
    /// Surplus copies removed after a drain or a node's return.
    Surplus,
    /// A node reported a corrupt shard copy.
    Corruption,
    /// Garbage collection deleted shards.
    Gc,
    /// A node is being drained, or was removed.
    Drain,
}

impl EventKind {
    /// The name in the JSON (`node_down`, `repair_started`...).
    pub fn name(self) -> &'static str {
        match self {
            EventKind::NodeUp => "node_up",
            EventKind::NodeDown => "node_down",
            EventKind::RepairStarted => "repair_started",
            EventKind::RepairFinished => "repair_finished",
            EventKind::Surplus => "surplus",
            EventKind::Corruption => "corruption",
            EventKind::Gc => "gc",
            EventKind::Drain => "drain",
        }
    }
}

/// One event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Increases by one per event since the coordinator started, so a client can ask only
    /// for what it has not seen (`/api/events?after=SEQ`).
    pub seq: u64,
    /// Wall clock, milliseconds since the Unix epoch.
    pub time_ms: u64,
    pub kind: EventKind,
    /// The same sentence the log has.
    pub text: String,
}

/// The ring buffer. Cheap to record into: one short lock, no I/O.
#[derive(Debug, Default)]
pub struct Events {
    inner: Mutex<Ring>,
}

#[derive(Debug, Default)]
struct Ring {
    events: VecDeque<Event>,
    next_seq: u64,
}

impl Events {
    /// Appends an event, dropping the oldest beyond [`CAPACITY`].
    pub fn record(&self, kind: EventKind, text: impl Into<String>) {
        let time_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        // A poisoned lock only means a thread panicked while appending; the events are
        // still worth showing.
        let mut r = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        r.next_seq += 1;
        let seq = r.next_seq;
        r.events.push_back(Event {
            seq,
            time_ms,
            kind,
            text: text.into(),
        });
        while r.events.len() > CAPACITY {
            r.events.pop_front();
        }
    }

    /// Events with a sequence number above `after`, oldest first.
    pub fn since(&self, after: u64) -> Vec<Event> {
        let r = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        r.events.iter().filter(|e| e.seq > after).cloned().collect()
    }
}

/// `[{"seq":1,"time_ms":...,"kind":"node_down","text":"..."}, ...]`, oldest first.
pub fn render_json(events: &[Event]) -> String {
    let items: Vec<String> = events
        .iter()
        .map(|e| {
            format!(
                "{{\"seq\":{},\"time_ms\":{},\"kind\":{},\"text\":{}}}",
                e.seq,
                e.time_ms,
                json_string(e.kind.name()),
                json_string(&e.text)
            )
        })
        .collect();
    format!("[{}]", items.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_events_in_order() {
        let ev = Events::default();
        for i in 0..CAPACITY + 5 {
            ev.record(EventKind::Gc, format!("gc {i}"));
        }
        let all = ev.since(0);
        assert_eq!(all.len(), CAPACITY);
        assert_eq!(all[0].text, "gc 5");
        assert_eq!(all[0].seq, 6);
        assert_eq!(all[CAPACITY - 1].seq, (CAPACITY + 5) as u64);
        assert_eq!(ev.since(CAPACITY as u64 + 3).len(), 2);
    }

    #[test]
    fn json_escapes_text() {
        let ev = Events::default();
        ev.record(EventKind::NodeDown, "node \"1\" is down");
        let json = render_json(&ev.since(0));
        assert!(json.starts_with("[{\"seq\":1,\"time_ms\":"), "{json}");
        assert!(
            json.ends_with(",\"kind\":\"node_down\",\"text\":\"node \\\"1\\\" is down\"}]"),
            "{json}"
        );
    }
}
