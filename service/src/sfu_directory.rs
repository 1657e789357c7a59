//! The SFU directory: SFU nodes announce themselves and their load in Redis; signaling
//! reads the list to place each zone's room on a node with room.
//!
//! Keys, under `isoplane:sfu:{pool}:` (a pool is a set of SFU nodes that share a secret
//! and serve the same signaling nodes):
//! - `nodes`: a set of node IDs, added to on every report;
//! - `node:{id}`: the node's [`SfuNode`] as JSON, expiring after three reports' worth of
//!   time. A node whose key expired is gone (it crashed, or stopped): readers drop it
//!   from the set.
//!
//! Both sides live here so the format has one owner.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// One SFU node as signaling sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SfuNode {
    pub id: String,
    /// Where clients reach it (`wss://sfu-2.example/v1/sfu`).
    pub url: String,
    /// Where signaling reaches its control API (`http://10.0.0.7:7880`).
    pub control_url: String,
    /// Participants it serves now.
    pub participants: u64,
    /// Participants it takes at most; a node at capacity gets no new rooms.
    pub capacity: u64,
}

impl SfuNode {
    /// Whether the node may take more rooms.
    pub fn has_room(&self) -> bool {
        self.participants < self.capacity
    }
}

fn prefix(pool: &str) -> String {
    format!("isoplane:sfu:{pool}:")
}

/// Writes this node's report; it lasts `ttl` unless written again.
pub async fn report(
    redis: &mut redis::aio::ConnectionManager,
    pool: &str,
    node: &SfuNode,
    ttl: Duration,
) -> redis::RedisResult<()> {
    let prefix = prefix(pool);
    let json = serde_json::to_string(node).unwrap_or_default();
    redis::pipe()
        .cmd("SET")
        .arg(format!("{prefix}node:{}", node.id))
        .arg(json)
        .arg("PX")
        .arg(ttl.as_millis() as u64)
        .ignore()
        .cmd("SADD")
        .arg(format!("{prefix}nodes"))
        .arg(&node.id)
        .ignore()
        .query_async(redis)
        .await
}

/// Takes this node out of the directory at once (on a graceful stop).
pub async fn withdraw(redis: &mut redis::aio::ConnectionManager, pool: &str, id: &str) -> redis::RedisResult<()> {
    let prefix = prefix(pool);
    redis::pipe()
        .cmd("DEL")
        .arg(format!("{prefix}node:{id}"))
        .ignore()
        .cmd("SREM")
        .arg(format!("{prefix}nodes"))
        .arg(id)
        .ignore()
        .query_async(redis)
        .await
}

/// Every live node of the pool, by ID.
pub async fn read(redis: &mut redis::aio::ConnectionManager, pool: &str) -> redis::RedisResult<Vec<SfuNode>> {
    let prefix = prefix(pool);
    let ids: Vec<String> = redis::cmd("SMEMBERS").arg(format!("{prefix}nodes")).query_async(redis).await?;
    let mut nodes = Vec::new();
    for id in ids {
        let report: Option<String> = redis::cmd("GET").arg(format!("{prefix}node:{id}")).query_async(redis).await?;
        match report.and_then(|json| serde_json::from_str::<SfuNode>(&json).ok()) {
            Some(node) => nodes.push(node),
            None => {
                // Its report expired: the node is gone.
                let _: i64 = redis::cmd("SREM").arg(format!("{prefix}nodes")).arg(&id).query_async(redis).await?;
            }
        }
    }
    nodes.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(nodes)
}
