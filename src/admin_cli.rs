//! `isoplane admin …`: moderation from scripts and terminals, through a running signaling
//! server's HTTP admin API (`POST /v1/admin/commands`, docs/moderation.md).
//!
//! Each subcommand builds one [`AdminCommand`], the same type the server and the browser
//! panel use, and reads the server's [`AdminAnswer`] into the same [`AdminReply`] the
//! server sent, so the three cannot drift apart. The exit code is non-zero whenever the
//! server refused or could not be reached.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use isoplane_signaling::protocol::{AdminAnswer, AdminCommand, AdminError, AdminReply, MediaArgs, UserArgs, ZoneArgs};
use serde_json::Value;

#[derive(Debug, Args)]
pub struct AdminArgs {
    /// Base URL of the signaling server.
    #[arg(long, default_value = "http://127.0.0.1:8080", env = "ISOPLANE_SERVER")]
    server: String,
    /// An admin's join token (see deploy/bin/isoplane-token).
    #[arg(long, env = "ISOPLANE_ADMIN_TOKEN", hide_env_values = true)]
    token: String,
    /// Print the server's answer as JSON.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    action: AdminAction,
}

/// Why, kept in the audit log and shown to the target.
#[derive(Debug, Args)]
struct Reason {
    #[arg(long, default_value = "")]
    reason: String,
}

/// Which media to mute or unmute (both when neither is given).
#[derive(Debug, Args)]
struct Kinds {
    #[arg(long)]
    audio: bool,
    #[arg(long)]
    video: bool,
}

impl Kinds {
    fn chosen(&self) -> (bool, bool) {
        if self.audio || self.video { (self.audio, self.video) } else { (true, true) }
    }
}

#[derive(Debug, Subcommand)]
enum AdminAction {
    /// Who is in the workspace's worlds now.
    People,
    /// Remove a user from every world (they may come back).
    Kick {
        user: String,
        #[command(flatten)]
        reason: Reason,
    },
    /// Mute a user's audio and/or video (both when neither flag is given).
    Mute {
        user: String,
        #[command(flatten)]
        kinds: Kinds,
        #[command(flatten)]
        reason: Reason,
    },
    /// Lift a mute (both kinds when neither flag is given).
    Unmute {
        user: String,
        #[command(flatten)]
        kinds: Kinds,
        #[command(flatten)]
        reason: Reason,
    },
    /// Bar a user from the workspace and remove them from every world.
    Ban {
        user: String,
        /// Seconds the ban lasts (until lifted when absent).
        #[arg(long = "for")]
        duration: Option<u64>,
        #[command(flatten)]
        reason: Reason,
    },
    Unban {
        user: String,
        #[command(flatten)]
        reason: Reason,
    },
    /// Make a user an admin of the workspace.
    Promote {
        user: String,
        #[command(flatten)]
        reason: Reason,
    },
    /// Take the admin role away (never from the last admin).
    Demote {
        user: String,
        #[command(flatten)]
        reason: Reason,
    },
    /// Keep everyone but admins out of a zone.
    Lock {
        world: String,
        zone: String,
        #[command(flatten)]
        reason: Reason,
    },
    Unlock {
        world: String,
        zone: String,
        #[command(flatten)]
        reason: Reason,
    },
    /// Limit the people in a zone (`none`: the world file's own limit).
    Capacity {
        world: String,
        zone: String,
        capacity: String,
        #[command(flatten)]
        reason: Reason,
    },
    /// Put a user on a spawn point of a world.
    Move {
        user: String,
        world: String,
        /// The spawn point (the world's default one when absent).
        #[arg(long)]
        spawn: Option<String>,
        #[command(flatten)]
        reason: Reason,
    },
    /// Show a notice to everyone in a world, or in one zone of it.
    Notice {
        world: String,
        text: String,
        #[arg(long)]
        zone: Option<String>,
    },
    /// Send everyone in a zone to a spawn point.
    EndMeeting {
        world: String,
        zone: String,
        #[arg(long)]
        spawn: Option<String>,
        #[command(flatten)]
        reason: Reason,
    },
    /// Stop a user's chat: nothing they write is sent.
    MuteChat {
        user: String,
        #[command(flatten)]
        reason: Reason,
    },
    /// Let a user chat again.
    UnmuteChat {
        user: String,
        #[command(flatten)]
        reason: Reason,
    },
    /// Delete a chat message from a world's history (and from everyone's screen).
    DeleteChat {
        world: String,
        /// The message's ID (`c-…`).
        id: String,
        #[command(flatten)]
        reason: Reason,
    },
    /// The bans in force.
    Bans,
    /// The mutes in force.
    Mutes,
    /// The workspace's admins.
    Admins,
    /// The locks and capacities set on a world's zones.
    Zones { world: String },
    /// The audit log, newest first.
    Audit {
        #[arg(long)]
        limit: Option<u32>,
        /// Only entries older than this entry ID (for paging).
        #[arg(long)]
        before: Option<i64>,
    },
}

fn command_of(action: AdminAction) -> Result<AdminCommand> {
    Ok(match action {
        AdminAction::People => AdminCommand::ListPeople,
        AdminAction::Kick { user, reason } => AdminCommand::Kick(UserArgs { user, reason: reason.reason }),
        AdminAction::Mute { user, kinds, reason } => {
            let (audio, video) = kinds.chosen();
            AdminCommand::Mute(MediaArgs { user, audio, video, reason: reason.reason })
        }
        AdminAction::Unmute { user, kinds, reason } => {
            let (audio, video) = kinds.chosen();
            AdminCommand::Unmute(MediaArgs { user, audio, video, reason: reason.reason })
        }
        AdminAction::MuteChat { user, reason } => AdminCommand::MuteChat(UserArgs { user, reason: reason.reason }),
        AdminAction::UnmuteChat { user, reason } => AdminCommand::UnmuteChat(UserArgs { user, reason: reason.reason }),
        AdminAction::DeleteChat { world, id, reason } => {
            AdminCommand::DeleteChat { world, message: id, reason: reason.reason }
        }
        AdminAction::Ban { user, duration, reason } => {
            AdminCommand::Ban { user, reason: reason.reason, duration_seconds: duration }
        }
        AdminAction::Unban { user, reason } => AdminCommand::Unban(UserArgs { user, reason: reason.reason }),
        AdminAction::Promote { user, reason } => AdminCommand::Promote(UserArgs { user, reason: reason.reason }),
        AdminAction::Demote { user, reason } => AdminCommand::Demote(UserArgs { user, reason: reason.reason }),
        AdminAction::Lock { world, zone, reason } => {
            AdminCommand::LockZone(ZoneArgs { world, zone, reason: reason.reason })
        }
        AdminAction::Unlock { world, zone, reason } => {
            AdminCommand::UnlockZone(ZoneArgs { world, zone, reason: reason.reason })
        }
        AdminAction::Capacity { world, zone, capacity, reason } => {
            let capacity = match capacity.as_str() {
                "none" => None,
                number => Some(number.parse().with_context(|| format!("capacity `{number}`: a number or `none`"))?),
            };
            AdminCommand::SetZoneCapacity { world, zone, capacity, reason: reason.reason }
        }
        AdminAction::Move { user, world, spawn, reason } => {
            AdminCommand::MoveUser { user, world, spawn, reason: reason.reason }
        }
        AdminAction::Notice { world, text, zone } => AdminCommand::Notice { world, zone, text },
        AdminAction::EndMeeting { world, zone, spawn, reason } => {
            AdminCommand::EndMeeting { world, zone, spawn, reason: reason.reason }
        }
        AdminAction::Bans => AdminCommand::ListBans,
        AdminAction::Mutes => AdminCommand::ListMutes,
        AdminAction::Admins => AdminCommand::ListAdmins,
        AdminAction::Zones { world } => AdminCommand::ListZones { world },
        AdminAction::Audit { limit, before } => AdminCommand::ListAudit { before, limit },
    })
}

pub fn run(args: AdminArgs) -> Result<ExitCode> {
    let json = args.json;
    let command = command_of(args.action)?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting the runtime")?;
    let (status, text, answer) = runtime.block_on(send(&args.server, &args.token, &command))?;
    if json {
        // The server's own text, only laid out: fields this CLI does not know are kept.
        let value: Value = serde_json::from_str(&text).unwrap_or_default();
        println!("{}", serde_json::to_string_pretty(&value).unwrap_or_default());
    }
    match answer.into_result() {
        Ok(reply) => {
            if !json {
                print!("{}", describe(&command, &reply));
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(AdminError { code, message }) => {
            let code = serde_json::to_value(code).ok().and_then(|c| c.as_str().map(str::to_owned)).unwrap_or_default();
            eprintln!("error: {code} (HTTP {status}): {message}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// Posts the command; returns the HTTP status, the body as sent, and the body read.
async fn send(server: &str, token: &str, command: &AdminCommand) -> Result<(u16, String, AdminAnswer)> {
    let url = format!("{}/v1/admin/commands", server.trim_end_matches('/'));
    let body = serde_json::to_string(command).context("encoding the command")?;
    let client =
        reqwest::Client::builder().timeout(Duration::from_secs(15)).build().context("making the HTTP client")?;
    let response = client
        .post(&url)
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .with_context(|| format!("cannot reach {url}"))?;
    let status = response.status().as_u16();
    let text = response.text().await.context("reading the answer")?;
    match serde_json::from_str(&text) {
        Ok(answer) => Ok((status, text, answer)),
        Err(_) => bail!("{url} answered HTTP {status} with something that is not an admin API answer: {text}"),
    }
}

/// A person-readable account of what the server answered.
fn describe(command: &AdminCommand, reply: &AdminReply) -> String {
    match reply {
        AdminReply::People { people } => table(
            &["WORLD", "ZONE", "USER", "NAME", "MUTED", "CONNECTED"],
            people.iter().map(|p| {
                let kinds = [(p.audio_muted, "audio"), (p.video_muted, "video"), (p.chat_muted, "chat")];
                let muted =
                    kinds.iter().filter(|(muted, _)| *muted).map(|(_, kind)| *kind).collect::<Vec<_>>().join("+");
                let connected = if p.connected { "yes" } else { "no" };
                vec![p.world.clone(), p.zone.clone(), p.user.clone(), p.name.clone(), muted, connected.into()]
            }),
        ),
        AdminReply::Bans { bans } => table(
            &["USER", "REASON", "BY", "EXPIRES"],
            bans.iter().map(|b| {
                let expires = b.expires_at.map_or("never".to_owned(), |t| t.to_string());
                vec![b.user_id.clone(), b.reason.clone(), b.created_by.clone(), expires]
            }),
        ),
        AdminReply::Mutes { mutes } => table(
            &["USER", "AUDIO", "VIDEO", "CHAT", "REASON", "BY"],
            mutes.iter().map(|m| {
                let flag = |muted: bool| if muted { "muted" } else { "" }.to_owned();
                vec![
                    m.user_id.clone(),
                    flag(m.audio),
                    flag(m.video),
                    flag(m.chat),
                    m.reason.clone(),
                    m.created_by.clone(),
                ]
            }),
        ),
        AdminReply::Admins { admins } => admins.iter().map(|a| format!("{a}\n")).collect(),
        AdminReply::Zones { zones } => table(
            &["ZONE", "LOCKED", "CAPACITY", "BY"],
            zones.iter().map(|z| {
                let locked = if z.locked { "yes" } else { "no" };
                let capacity = z.capacity.map_or("world file".to_owned(), |c| c.to_string());
                vec![z.zone.clone(), locked.into(), capacity, z.updated_by.clone()]
            }),
        ),
        AdminReply::Audit { entries } => table(
            &["ID", "TIME", "ACTOR", "ACTION", "TARGET", "OUTCOME", "REASON", "DETAIL"],
            entries.iter().map(|e| {
                vec![
                    e.id.to_string(),
                    e.created_at.to_string(),
                    e.actor.clone(),
                    e.action.clone(),
                    e.target.clone(),
                    e.outcome.clone(),
                    e.reason.clone(),
                    e.detail.clone(),
                ]
            }),
        ),
        done => format!("done: {} {}\n", command.name(), serde_json::to_string(done).unwrap_or_default()),
    }
}

/// Left-aligned columns under a header.
fn table(header: &[&str], rows: impl Iterator<Item = Vec<String>>) -> String {
    let rows: Vec<Vec<String>> =
        std::iter::once(header.iter().map(|h| (*h).to_owned()).collect()).chain(rows).collect();
    let widths: Vec<usize> =
        (0..header.len()).map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for row in &rows {
        let cells: Vec<String> = row.iter().zip(&widths).map(|(cell, width)| format!("{cell:width$}")).collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    /// The subcommands alone, as `isoplane admin` reads them after its own options.
    #[derive(Debug, Parser)]
    struct Subcommands {
        #[command(subcommand)]
        action: AdminAction,
    }

    fn command(args: &[&str]) -> AdminCommand {
        let parsed = Subcommands::try_parse_from(std::iter::once("admin").chain(args.iter().copied())).unwrap();
        command_of(parsed.action).unwrap()
    }

    #[test]
    fn chat_commands_are_built_as_the_server_reads_them() {
        assert_eq!(
            command(&["mute-chat", "u-ada", "--reason", "spam"]),
            AdminCommand::MuteChat(UserArgs::new("u-ada", "spam"))
        );
        assert_eq!(command(&["unmute-chat", "u-ada"]), AdminCommand::UnmuteChat(UserArgs::new("u-ada", "")));
        assert_eq!(
            command(&["delete-chat", "demo", "c-1764770000123-5f0e3a9c0001", "--reason", "spam"]),
            AdminCommand::DeleteChat {
                world: "demo".into(),
                message: "c-1764770000123-5f0e3a9c0001".into(),
                reason: "spam".into()
            }
        );
    }
}
