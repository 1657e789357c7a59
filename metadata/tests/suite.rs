//! The metadata database's behaviour, one suite run on both engines: `sqlite::*` (a
//! SQLite file) and `postgres::*` (this machine's PostgreSQL, a schema per test).
//!
//! Each test function below takes the engine; the `both_backends!` macro turns it into
//! one `#[tokio::test]` per engine, so both run the same assertions.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Backend, TestDb};
use isoplane_metadata::{
    AuditEntry, Ban, ChatAudience, ChatRecord, IDENTITY_PROVIDER, IngestKey, MetadataError, Mute, UserStanding,
    ZoneSetting,
};

macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Backend::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Backend::Postgres).await;
                }
            )*
        }
    };
}

both_backends!(
    token_admins_are_recorded_on_first_use,
    demotion_sticks_against_admin_tokens_until_promotion,
    the_last_admin_is_neither_demoted_nor_banned,
    admins_demoting_each_other_at_once_leave_one,
    banning_an_admin_demotes_them,
    bans_expire_are_replaced_and_lifted,
    mutes_are_replaced_deleted_and_listed,
    zone_settings_are_replaced_deleted_and_listed,
    malformed_values_read_back_are_reported,
    audit_entries_keep_outcome_and_detail_and_page,
    recent_actions_of_one_kind_that_took_effect_are_found,
    everything_survives_closing_and_reopening,
    a_database_from_before_moderation_is_upgraded,
    a_users_standing_is_read_in_one_go,
    a_chat_mute_is_recorded_beside_media_mutes,
    chat_history_keeps_the_last_200_of_each_zone_and_of_the_world_within_a_day,
    direct_history_holds_both_directions_and_the_last_200_of_each_user,
    deleted_chat_messages_are_not_returned_and_a_late_write_does_not_bring_them_back,
    chat_history_is_per_workspace_and_world_and_old_messages_are_pruned,
    ingest_keys_are_found_by_hash_until_revoked,
);

const WS: &str = "acme";

fn ban(user: &str, by: &str, at: i64, expires_at: Option<i64>) -> Ban {
    Ban {
        workspace: WS.into(),
        user_id: user.into(),
        reason: "spam".into(),
        created_by: by.into(),
        created_at: at,
        expires_at,
    }
}

fn mute(user: &str, audio: bool, video: bool, reason: &str, at: i64) -> Mute {
    Mute {
        workspace: WS.into(),
        user_id: user.into(),
        audio,
        video,
        chat: false,
        reason: reason.into(),
        created_by: "ada".into(),
        created_at: at,
    }
}

fn zone(world: &str, zone: &str, locked: bool, capacity: Option<u32>, at: i64) -> ZoneSetting {
    ZoneSetting {
        workspace: WS.into(),
        world: world.into(),
        zone: zone.into(),
        locked,
        capacity,
        updated_by: "ada".into(),
        updated_at: at,
    }
}

fn audit(action: &str, outcome: &str, detail: &str, at: i64) -> AuditEntry {
    AuditEntry {
        id: 0,
        workspace: WS.into(),
        actor: "ada".into(),
        action: action.into(),
        target: "user:mallory".into(),
        reason: "spam".into(),
        outcome: outcome.into(),
        detail: detail.into(),
        created_at: at,
    }
}

/// Who `added_by` names for each admin of the workspace, read with SQL.
async fn admin_grants(db: &TestDb) -> Vec<(String, String)> {
    use sqlx::Row;
    let mut raw = db.raw().await;
    let rows = sqlx::query("SELECT user_id, added_by FROM admins WHERE workspace = $1 ORDER BY user_id")
        .bind(WS)
        .fetch_all(&mut raw)
        .await
        .unwrap();
    rows.iter().map(|row| (row.get("user_id"), row.get("added_by"))).collect()
}

async fn token_admins_are_recorded_on_first_use(backend: Backend) {
    let db = TestDb::new(backend).await;
    let metadata = db.open().await;
    // A member's token grants nothing, and nothing is written.
    assert!(!metadata.admin_status(WS, "bob", false, 10).await.unwrap());
    assert!(!metadata.workspace_exists(WS).await.unwrap());
    // An admin token is taken at its word once and stored, creating the workspace.
    assert!(metadata.admin_status(WS, "ada", true, 10).await.unwrap());
    assert!(metadata.workspace_exists(WS).await.unwrap());
    assert_eq!(admin_grants(&db).await, [("ada".to_owned(), IDENTITY_PROVIDER.to_owned())]);
    // From then on the record stands, even with a member token.
    assert!(metadata.admin_status(WS, "ada", false, 20).await.unwrap());
    assert!(metadata.admin_status(WS, "ada", true, 30).await.unwrap());
    assert!(metadata.is_admin(WS, "ada").await.unwrap());
    assert_eq!(metadata.admins(WS).await.unwrap(), ["ada"]);
    // Admin of one workspace only.
    assert!(!metadata.admin_status("elsewhere", "ada", false, 40).await.unwrap());
    // A user listed by an admin is an admin whatever the token says.
    metadata.add_admin(WS, "bob", "ada", 50).await.unwrap();
    assert!(metadata.admin_status(WS, "bob", false, 60).await.unwrap());
    assert_eq!(
        admin_grants(&db).await,
        [("ada".to_owned(), IDENTITY_PROVIDER.to_owned()), ("bob".to_owned(), "ada".to_owned())]
    );
}

async fn demotion_sticks_against_admin_tokens_until_promotion(backend: Backend) {
    let db = TestDb::new(backend).await;
    let metadata = db.open().await;
    assert!(metadata.admin_status(WS, "ada", true, 10).await.unwrap());
    assert!(metadata.promote(WS, "cy", "ada", 11).await.unwrap(), "newly admin");
    assert!(!metadata.promote(WS, "cy", "ada", 12).await.unwrap(), "already admin");

    assert!(metadata.demote(WS, "ada", "cy", 20).await.unwrap(), "was an admin");
    assert_eq!(metadata.admins(WS).await.unwrap(), ["cy"]);
    assert!(!metadata.admin_status(WS, "ada", true, 21).await.unwrap(), "the token no longer grants it");
    assert_eq!(metadata.admins(WS).await.unwrap(), ["cy"], "and nothing was written");
    // Demoting again is harmless.
    assert!(!metadata.demote(WS, "ada", "cy", 22).await.unwrap());

    // A user never seen can be demoted ahead of their first admin token.
    assert!(!metadata.demote(WS, "eve", "cy", 30).await.unwrap());
    assert!(!metadata.admin_status(WS, "eve", true, 31).await.unwrap());

    // Promotion clears the demotion: rights come back, and stay even once removed by hand
    // and granted by a token again.
    assert!(metadata.promote(WS, "ada", "cy", 40).await.unwrap());
    assert!(metadata.admin_status(WS, "ada", false, 41).await.unwrap());
    assert!(metadata.remove_admin(WS, "ada").await.unwrap());
    assert!(metadata.admin_status(WS, "ada", true, 42).await.unwrap());
    assert_eq!(metadata.admins(WS).await.unwrap(), ["ada", "cy"]);
}

async fn the_last_admin_is_neither_demoted_nor_banned(backend: Backend) {
    let db = TestDb::new(backend).await;
    let metadata = db.open().await;
    assert!(metadata.admin_status(WS, "ada", true, 10).await.unwrap());

    let refused = metadata.demote(WS, "ada", "ada", 20).await;
    assert!(matches!(refused, Err(MetadataError::LastAdmin)), "{refused:?}");
    let refused = metadata.ban_user(&ban("ada", "ada", 21, None)).await;
    assert!(matches!(refused, Err(MetadataError::LastAdmin)), "{refused:?}");
    // Nothing changed: still the admin, no demotion recorded, no ban.
    assert_eq!(metadata.admins(WS).await.unwrap(), ["ada"]);
    assert!(metadata.remove_admin(WS, "ada").await.unwrap());
    assert!(metadata.admin_status(WS, "ada", true, 22).await.unwrap(), "no demotion was recorded");
    assert_eq!(metadata.active_ban(WS, "ada", 23).await.unwrap(), None);

    // With a second admin, the first can go.
    assert!(metadata.promote(WS, "bob", "ada", 30).await.unwrap());
    assert!(metadata.demote(WS, "ada", "bob", 31).await.unwrap());
    assert_eq!(metadata.admins(WS).await.unwrap(), ["bob"]);
    // Demoting or banning someone else is fine while one admin remains.
    assert!(!metadata.demote(WS, "mallory", "bob", 32).await.unwrap());
    metadata.ban_user(&ban("mallory", "bob", 33, None)).await.unwrap();
    assert_eq!(metadata.admins(WS).await.unwrap(), ["bob"]);
}

async fn admins_demoting_each_other_at_once_leave_one(backend: Backend) {
    let db = TestDb::new(backend).await;
    let metadata = db.open().await;
    for round in 0..5i64 {
        let (a, b) = (format!("a{round}"), format!("b{round}"));
        let workspace = format!("race{round}");
        metadata.promote(&workspace, &a, "root", round).await.unwrap();
        metadata.promote(&workspace, &b, "root", round).await.unwrap();
        let (first, second) =
            tokio::join!(metadata.demote(&workspace, &a, &b, round), metadata.demote(&workspace, &b, &a, round));
        let refusals = [&first, &second].iter().filter(|r| matches!(r, Err(MetadataError::LastAdmin))).count();
        assert_eq!(refusals, 1, "round {round}: {first:?} {second:?}");
        assert!(first.is_ok() || second.is_ok(), "round {round}: {first:?} {second:?}");
        assert_eq!(metadata.admins(&workspace).await.unwrap().len(), 1, "round {round}");
    }
}

async fn banning_an_admin_demotes_them(backend: Backend) {
    let db = TestDb::new(backend).await;
    let metadata = db.open().await;
    assert!(metadata.admin_status(WS, "ada", true, 10).await.unwrap());
    assert!(metadata.admin_status(WS, "bob", true, 11).await.unwrap());

    metadata.ban_user(&ban("bob", "ada", 100, Some(200))).await.unwrap();
    assert_eq!(metadata.active_ban(WS, "bob", 150).await.unwrap(), Some(ban("bob", "ada", 100, Some(200))));
    assert_eq!(metadata.admins(WS).await.unwrap(), ["ada"]);
    // The demotion outlives the ban: neither its expiry nor lifting it restores the rights.
    assert!(!metadata.admin_status(WS, "bob", true, 250).await.unwrap());
    assert!(metadata.lift_ban(WS, "bob").await.unwrap());
    assert!(!metadata.admin_status(WS, "bob", true, 300).await.unwrap());
    // Promotion does.
    assert!(metadata.promote(WS, "bob", "ada", 310).await.unwrap());
    assert!(metadata.admin_status(WS, "bob", false, 311).await.unwrap());

    // The plain record write bans without touching admin rights.
    metadata.ban(&ban("bob", "ada", 400, None)).await.unwrap();
    assert_eq!(metadata.admins(WS).await.unwrap(), ["ada", "bob"]);
}

async fn bans_expire_are_replaced_and_lifted(backend: Backend) {
    let db = TestDb::new(backend).await;
    let metadata = db.open().await;
    metadata.ensure_workspace(WS, 1).await.unwrap();
    metadata.ban_user(&ban("mallory", "ada", 100, None)).await.unwrap();
    metadata.ban_user(&ban("trent", "ada", 100, Some(200))).await.unwrap();
    assert_eq!(metadata.active_ban(WS, "mallory", 150).await.unwrap(), Some(ban("mallory", "ada", 100, None)));
    assert!(metadata.active_ban(WS, "trent", 150).await.unwrap().is_some());
    assert!(metadata.active_ban(WS, "trent", 200).await.unwrap().is_none(), "expired");
    assert_eq!(metadata.active_bans(WS, 150).await.unwrap().len(), 2);
    // Banning again replaces the earlier ban.
    metadata.ban_user(&ban("trent", "ada", 100, Some(500))).await.unwrap();
    assert!(metadata.active_ban(WS, "trent", 300).await.unwrap().is_some());
    assert!(metadata.lift_ban(WS, "mallory").await.unwrap());
    assert!(!metadata.lift_ban(WS, "mallory").await.unwrap());
    assert_eq!(metadata.active_bans(WS, 150).await.unwrap(), [ban("trent", "ada", 100, Some(500))]);
    assert!(metadata.active_bans("elsewhere", 150).await.unwrap().is_empty());
}

async fn mutes_are_replaced_deleted_and_listed(backend: Backend) {
    let db = TestDb::new(backend).await;
    let metadata = db.open().await;
    assert_eq!(metadata.mute_of(WS, "bob").await.unwrap(), None);
    // The first mute of a workspace creates it.
    metadata.set_mute(&mute("bob", true, false, "noise", 10)).await.unwrap();
    assert!(metadata.workspace_exists(WS).await.unwrap());
    assert_eq!(metadata.mute_of(WS, "bob").await.unwrap(), Some(mute("bob", true, false, "noise", 10)));
    // A new mute replaces the old one whole.
    metadata.set_mute(&mute("bob", true, true, "worse", 20)).await.unwrap();
    assert_eq!(metadata.mute_of(WS, "bob").await.unwrap(), Some(mute("bob", true, true, "worse", 20)));
    metadata.set_mute(&mute("amy", false, true, "camera", 30)).await.unwrap();
    assert_eq!(
        metadata.mutes(WS).await.unwrap(),
        [mute("amy", false, true, "camera", 30), mute("bob", true, true, "worse", 20)]
    );
    // Nothing muted: no record.
    metadata.set_mute(&mute("bob", false, false, "forgiven", 40)).await.unwrap();
    assert_eq!(metadata.mute_of(WS, "bob").await.unwrap(), None);
    assert_eq!(metadata.mutes(WS).await.unwrap(), [mute("amy", false, true, "camera", 30)]);
    metadata.set_mute(&mute("nobody", false, false, "", 50)).await.unwrap();
    assert_eq!(metadata.mutes(WS).await.unwrap().len(), 1);
    assert!(metadata.mutes("elsewhere").await.unwrap().is_empty());
}

async fn a_users_standing_is_read_in_one_go(backend: Backend) {
    let db = TestDb::new(backend).await;
    let metadata = db.open().await;
    assert_eq!(metadata.standing(WS, "bob", 150).await.unwrap(), UserStanding::default(), "no records at all");
    metadata.ensure_workspace(WS, 1).await.unwrap();
    metadata.ban_user(&ban("bob", "ada", 100, Some(200))).await.unwrap();
    metadata.set_mute(&mute("bob", false, true, "camera", 10)).await.unwrap();
    metadata.promote(WS, "ada", "root", 10).await.unwrap();
    metadata.promote(WS, "carol", "root", 10).await.unwrap();
    metadata.demote(WS, "carol", "ada", 20).await.unwrap();
    let bob = metadata.standing(WS, "bob", 150).await.unwrap();
    // A ban also records a demotion (docs/moderation.md).
    assert_eq!(bob, UserStanding { banned: true, demoted: true, video_muted: true, ..UserStanding::default() });
    assert!(!metadata.standing(WS, "bob", 200).await.unwrap().banned, "the ban expired");
    assert!(metadata.standing(WS, "ada", 150).await.unwrap().listed_admin);
    let carol = metadata.standing(WS, "carol", 150).await.unwrap();
    assert_eq!((carol.listed_admin, carol.demoted), (false, true));
    assert_eq!(metadata.standing("elsewhere", "bob", 150).await.unwrap(), UserStanding::default());
}

async fn zone_settings_are_replaced_deleted_and_listed(backend: Backend) {
    let db = TestDb::new(backend).await;
    let metadata = db.open().await;
    assert!(metadata.zone_settings(WS, "lobby").await.unwrap().is_empty());
    metadata.set_zone_setting(&zone("lobby", "stage", true, None, 10)).await.unwrap();
    metadata.set_zone_setting(&zone("lobby", "cafe", false, Some(4), 11)).await.unwrap();
    metadata.set_zone_setting(&zone("garden", "pond", true, Some(0), 12)).await.unwrap();
    assert_eq!(
        metadata.zone_settings(WS, "lobby").await.unwrap(),
        [zone("lobby", "cafe", false, Some(4), 11), zone("lobby", "stage", true, None, 10)]
    );
    // A new setting replaces the old one whole; the largest capacity fits.
    metadata.set_zone_setting(&zone("lobby", "stage", false, Some(u32::MAX), 20)).await.unwrap();
    // Back to the world file's own: no record.
    metadata.set_zone_setting(&zone("lobby", "cafe", false, None, 21)).await.unwrap();
    assert_eq!(metadata.zone_settings(WS, "lobby").await.unwrap(), [zone("lobby", "stage", false, Some(u32::MAX), 20)]);
    assert_eq!(metadata.zone_settings(WS, "garden").await.unwrap(), [zone("garden", "pond", true, Some(0), 12)]);
    assert!(metadata.zone_settings("elsewhere", "lobby").await.unwrap().is_empty());
}

async fn malformed_values_read_back_are_reported(backend: Backend) {
    let db = TestDb::new(backend).await;
    let metadata = db.open().await;
    metadata.set_zone_setting(&zone("lobby", "stage", true, Some(3), 10)).await.unwrap();
    metadata.set_mute(&mute("bob", true, false, "noise", 10)).await.unwrap();
    let mut raw = db.raw().await;
    sqlx::query("UPDATE zone_settings SET capacity = 4294967296").execute(&mut raw).await.unwrap();
    let read = metadata.zone_settings(WS, "lobby").await;
    assert!(
        matches!(read, Err(MetadataError::Corrupt { table: "zone_settings", column: "capacity", ref value }) if value == "4294967296"),
        "{read:?}"
    );
    sqlx::query("UPDATE zone_settings SET capacity = -1").execute(&mut raw).await.unwrap();
    assert!(matches!(metadata.zone_settings(WS, "lobby").await, Err(MetadataError::Corrupt { .. })));
    sqlx::query("UPDATE zone_settings SET capacity = NULL, locked = 2").execute(&mut raw).await.unwrap();
    let read = metadata.zone_settings(WS, "lobby").await;
    assert!(matches!(read, Err(MetadataError::Corrupt { column: "locked", .. })), "{read:?}");
    sqlx::query("UPDATE mutes SET video = -1").execute(&mut raw).await.unwrap();
    let read = metadata.mute_of(WS, "bob").await;
    assert!(matches!(read, Err(MetadataError::Corrupt { table: "mutes", column: "video", .. })), "{read:?}");
}

async fn recent_actions_of_one_kind_that_took_effect_are_found(backend: Backend) {
    let db = TestDb::new(backend).await;
    let metadata = db.open().await;
    metadata.record_audit(&audit("kick", AuditEntry::DONE, "", 99)).await.unwrap();
    let at_100 = metadata.record_audit(&audit("kick", AuditEntry::DONE, "", 100)).await.unwrap();
    metadata.record_audit(&audit("kick", AuditEntry::REFUSED, "", 101)).await.unwrap();
    metadata.record_audit(&audit("ban", AuditEntry::DONE, "", 102)).await.unwrap();
    let at_103 = metadata.record_audit(&audit("kick", AuditEntry::DONE, "", 103)).await.unwrap();
    metadata
        .record_audit(&AuditEntry { workspace: "elsewhere".into(), ..audit("kick", AuditEntry::DONE, "", 104) })
        .await
        .unwrap();

    let kicks = metadata.actions_since(WS, "kick", 100).await.unwrap();
    assert_eq!(
        kicks,
        [
            AuditEntry { id: at_100, ..audit("kick", "done", "", 100) },
            AuditEntry { id: at_103, ..audit("kick", "done", "", 103) },
        ]
    );
    assert!(metadata.actions_since(WS, "kick", 104).await.unwrap().is_empty());
}

async fn audit_entries_keep_outcome_and_detail_and_page(backend: Backend) {
    let db = TestDb::new(backend).await;
    let metadata = db.open().await;
    let first = metadata.record_audit(&audit("ban", AuditEntry::DONE, "", 100)).await.unwrap();
    let second = metadata.record_audit(&audit("mute", AuditEntry::REFUSED, "audio", 101)).await.unwrap();
    let third = metadata.record_audit(&audit("zone.capacity", AuditEntry::FAILED, "capacity 4", 102)).await.unwrap();
    let fourth = metadata.record_audit(&audit("world.reload", AuditEntry::DONE, "world demo", 103)).await.unwrap();
    assert!(first < second && second < third && third < fourth);

    let newest = metadata.audit_log(WS, None, 2).await.unwrap();
    assert_eq!(
        newest,
        [
            AuditEntry { id: fourth, ..audit("world.reload", "done", "world demo", 103) },
            AuditEntry { id: third, ..audit("zone.capacity", "failed", "capacity 4", 102) },
        ]
    );
    // The next page starts below the last entry seen.
    let older = metadata.audit_log(WS, Some(third), 2).await.unwrap();
    assert_eq!(
        older,
        [
            AuditEntry { id: second, ..audit("mute", "refused", "audio", 101) },
            AuditEntry { id: first, ..audit("ban", "done", "", 100) },
        ]
    );
    assert!(metadata.audit_log(WS, Some(first), 10).await.unwrap().is_empty());
    assert!(metadata.audit_log("elsewhere", None, 10).await.unwrap().is_empty());
    // The JSON moderation tools show.
    let json = serde_json::to_value(&older[0]).unwrap();
    assert_eq!((json["outcome"].as_str(), json["detail"].as_str()), (Some("refused"), Some("audio")));
}

async fn everything_survives_closing_and_reopening(backend: Backend) {
    let db = TestDb::new(backend).await;
    let metadata = db.open().await;
    assert!(metadata.admin_status(WS, "ada", true, 10).await.unwrap());
    assert!(metadata.promote(WS, "bob", "ada", 11).await.unwrap());
    assert!(metadata.promote(WS, "cy", "ada", 12).await.unwrap());
    assert!(metadata.demote(WS, "cy", "ada", 13).await.unwrap());
    metadata.ban_user(&ban("bob", "ada", 14, None)).await.unwrap();
    metadata.set_mute(&mute("dan", true, false, "noise", 15)).await.unwrap();
    metadata.set_zone_setting(&zone("lobby", "stage", true, Some(8), 16)).await.unwrap();
    let id = metadata.record_audit(&audit("mute", AuditEntry::DONE, "audio", 17)).await.unwrap();
    metadata.close().await;
    assert!(metadata.ping().await.is_err(), "closed");

    let reopened = db.open().await;
    assert_eq!(reopened.admins(WS).await.unwrap(), ["ada"]);
    assert!(reopened.admin_status(WS, "ada", false, 20).await.unwrap(), "the token grant was stored");
    assert!(!reopened.admin_status(WS, "cy", true, 20).await.unwrap(), "the demotion was stored");
    assert!(!reopened.admin_status(WS, "bob", true, 20).await.unwrap(), "banning demoted bob");
    assert_eq!(reopened.active_ban(WS, "bob", 20).await.unwrap(), Some(ban("bob", "ada", 14, None)));
    assert_eq!(reopened.mutes(WS).await.unwrap(), [mute("dan", true, false, "noise", 15)]);
    assert_eq!(reopened.zone_settings(WS, "lobby").await.unwrap(), [zone("lobby", "stage", true, Some(8), 16)]);
    assert_eq!(
        reopened.audit_log(WS, None, 10).await.unwrap(),
        [AuditEntry { id, ..audit("mute", "done", "audio", 17) }]
    );
    // The last admin is still protected after the restart.
    assert!(matches!(reopened.demote(WS, "ada", "ada", 21).await, Err(MetadataError::LastAdmin)));
    reopened.close().await;
}

/// A database the asset server created before migration 0002 (its files are byte for byte
/// the same, so their checksums match) gains the new tables and columns, and its audit
/// entries read as done with no detail.
async fn a_database_from_before_moderation_is_upgraded(backend: Backend) {
    let db = TestDb::new(backend).await;
    let only_first = db.dir().join("migrations-0001");
    std::fs::create_dir_all(&only_first).unwrap();
    std::fs::copy(db.migrations().join("0001_initial.sql"), only_first.join("0001_initial.sql")).unwrap();
    let mut raw = db.raw().await;
    let old = sqlx::migrate::Migrator::new(only_first.as_path()).await.unwrap();
    old.run(&mut raw).await.unwrap();
    sqlx::query("INSERT INTO workspaces (name, created_at) VALUES ('acme', 1)").execute(&mut raw).await.unwrap();
    sqlx::query("INSERT INTO admins (workspace, user_id, added_by, added_at) VALUES ('acme', 'ada', 'root', 1)")
        .execute(&mut raw)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO audit_log (workspace, actor, action, target, reason, created_at) \
         VALUES ('acme', 'ada', 'world.publish', 'world:lobby@1', '', 5)",
    )
    .execute(&mut raw)
    .await
    .unwrap();
    drop(raw);

    let metadata = db.open().await;
    let log = metadata.audit_log(WS, None, 10).await.unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!((log[0].outcome.as_str(), log[0].detail.as_str()), ("done", ""));
    assert_eq!(metadata.admins(WS).await.unwrap(), ["ada"]);
    metadata.set_mute(&mute("bob", true, false, "noise", 10)).await.unwrap();
    assert_eq!(metadata.mutes(WS).await.unwrap().len(), 1);
}

/// Without a configured database a service keeps its records in memory: the same
/// behaviour for as long as the handle lives, and each handle its own database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_in_memory_database_works_while_it_lives() {
    let metadata = isoplane_metadata::Metadata::connect_in_memory().await.unwrap();
    assert_eq!(metadata.backend(), isoplane_metadata::Backend::Sqlite);
    assert!(metadata.admin_status(WS, "ada", true, 10).await.unwrap());
    assert!(metadata.promote(WS, "bob", "ada", 11).await.unwrap());
    let (first, second) = tokio::join!(metadata.demote(WS, "ada", "bob", 12), metadata.demote(WS, "bob", "ada", 12));
    assert_eq!([&first, &second].iter().filter(|r| matches!(r, Err(MetadataError::LastAdmin))).count(), 1);
    metadata.set_mute(&mute("dan", true, false, "noise", 13)).await.unwrap();
    metadata.set_zone_setting(&zone("lobby", "stage", true, Some(2), 14)).await.unwrap();
    metadata.ban_user(&ban("eve", "ada", 15, None)).await.unwrap();
    let id = metadata.record_audit(&audit("mute", AuditEntry::DONE, "audio", 16)).await.unwrap();
    assert_eq!(metadata.admins(WS).await.unwrap().len(), 1);
    assert_eq!(metadata.mutes(WS).await.unwrap(), [mute("dan", true, false, "noise", 13)]);
    assert_eq!(metadata.zone_settings(WS, "lobby").await.unwrap(), [zone("lobby", "stage", true, Some(2), 14)]);
    assert!(metadata.active_ban(WS, "eve", 20).await.unwrap().is_some());
    assert_eq!(metadata.audit_log(WS, None, 10).await.unwrap()[0].id, id);
    // Another handle is another database.
    let other = isoplane_metadata::Metadata::connect_in_memory().await.unwrap();
    assert!(other.admins(WS).await.unwrap().is_empty());
    assert!(other.mutes(WS).await.unwrap().is_empty());
}

// ---- chat ----

/// A minute, in the milliseconds chat times are kept in.
const MINUTE_MS: i64 = 60_000;
const DAY_MS: i64 = 24 * 60 * MINUTE_MS;
/// "Now" for the chat tests: some day in 2026, in milliseconds.
const NOW_MS: i64 = 1_780_000_000_000;

fn chat(id: &str, audience: ChatAudience, from: &str, at: i64) -> ChatRecord {
    ChatRecord {
        workspace: WS.into(),
        world: "lobby".into(),
        id: id.into(),
        audience,
        from_user: from.into(),
        from_name: from.to_uppercase(),
        text: format!("{from} says <b>hi</b> & \"bye\" in {id}"),
        sent_at: at,
    }
}

fn in_zone(zone: &str) -> ChatAudience {
    ChatAudience::Zone { zone: zone.into() }
}

fn to_user(user: &str) -> ChatAudience {
    ChatAudience::Direct { user: user.into(), name: user.to_uppercase() }
}

fn ids(records: &[ChatRecord]) -> Vec<String> {
    records.iter().map(|r| r.id.clone()).collect()
}

async fn a_chat_mute_is_recorded_beside_media_mutes(backend: Backend) {
    let db = TestDb::new(backend).await;
    let metadata = db.open().await;
    let chat_only = Mute { chat: true, ..mute("bob", false, false, "spam", 10) };
    metadata.set_mute(&chat_only).await.unwrap();
    assert_eq!(metadata.mute_of(WS, "bob").await.unwrap(), Some(chat_only.clone()), "kept though no media is muted");
    let standing = metadata.standing(WS, "bob", 11).await.unwrap();
    assert_eq!(standing, UserStanding { chat_muted: true, ..UserStanding::default() });
    metadata.set_mute(&mute("bob", false, false, "forgiven", 12)).await.unwrap();
    assert_eq!(metadata.mute_of(WS, "bob").await.unwrap(), None, "nothing muted: no row");
    assert!(!metadata.standing(WS, "bob", 13).await.unwrap().chat_muted);
}

async fn chat_history_keeps_the_last_200_of_each_zone_and_of_the_world_within_a_day(backend: Backend) {
    let db = TestDb::new(backend).await;
    let metadata = db.open().await;
    let since = NOW_MS - DAY_MS;
    let mut written = Vec::new();
    // A day and a minute ago: too old for any history.
    written.push(chat("c-old", in_zone("cafe"), "ada", since - MINUTE_MS));
    for n in 0..205 {
        written.push(chat(&format!("c-cafe-{n:03}"), in_zone("cafe"), "ada", since + n));
        written.push(chat(&format!("c-world-{n:03}"), ChatAudience::World, "bob", since + 1000 + n));
    }
    written.push(chat("c-garden", in_zone("garden"), "cy", since + 10));
    metadata.store_chat(&written).await.unwrap();
    let recent = metadata.recent_chat(WS, "lobby", since, 200).await.unwrap();
    let of = |want: &ChatAudience| recent.iter().filter(|r| &r.audience == want).cloned().collect::<Vec<_>>();
    let cafe = of(&in_zone("cafe"));
    assert_eq!(
        ids(&cafe),
        (5..205).map(|n| format!("c-cafe-{n:03}")).collect::<Vec<_>>(),
        "the last 200, oldest first"
    );
    assert_eq!(cafe[0], written[11], "read back as written, text verbatim");
    let world = of(&ChatAudience::World);
    assert_eq!(ids(&world), (5..205).map(|n| format!("c-world-{n:03}")).collect::<Vec<_>>());
    assert_eq!(ids(&of(&in_zone("garden"))), ["c-garden"], "each zone has its own bound");
    assert_eq!(recent.len(), 401);
    assert!(recent.windows(2).all(|w| w[0].sent_at <= w[1].sent_at), "oldest first overall");
}

async fn direct_history_holds_both_directions_and_the_last_200_of_each_user(backend: Backend) {
    let db = TestDb::new(backend).await;
    let metadata = db.open().await;
    let since = NOW_MS - DAY_MS;
    let mut written = Vec::new();
    // 250 from ada to bob, then 5 from bob to ada, then one from cy to dan.
    for n in 0..250 {
        written.push(chat(&format!("c-ab-{n:03}"), to_user("bob"), "ada", since + n));
    }
    for n in 0..5 {
        written.push(chat(&format!("c-ba-{n}"), to_user("ada"), "bob", since + 1000 + n));
    }
    written.push(chat("c-cd", to_user("dan"), "cy", since + 2000));
    metadata.store_chat(&written).await.unwrap();
    let recent = metadata.recent_chat(WS, "lobby", since, 200).await.unwrap();
    let of_ada: Vec<&ChatRecord> =
        recent.iter().filter(|r| r.from_user == "ada" || r.audience == to_user("ada")).collect();
    assert_eq!(of_ada.len(), 200, "ada's last 200, sent and received");
    assert_eq!(of_ada[0].id, "c-ab-055");
    assert_eq!(
        of_ada[195..].iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        ["c-ba-0", "c-ba-1", "c-ba-2", "c-ba-3", "c-ba-4"],
        "what bob sent her is in her history too"
    );
    assert_eq!(of_ada[0].audience, to_user("bob"));
    assert!(recent.iter().any(|r| r.id == "c-cd"), "cy and dan have their own bound");
    assert_eq!(recent.len(), 201, "each message once");
}

async fn deleted_chat_messages_are_not_returned_and_a_late_write_does_not_bring_them_back(backend: Backend) {
    let db = TestDb::new(backend).await;
    let metadata = db.open().await;
    let (a, b) = (chat("c-1", in_zone("cafe"), "ada", NOW_MS), chat("c-2", ChatAudience::World, "bob", NOW_MS + 1));
    metadata.store_chat(&[a.clone(), b.clone()]).await.unwrap();
    assert_eq!(metadata.delete_chat(WS, "lobby", "c-1", NOW_MS + 5).await.unwrap(), Some(a.clone()));
    assert_eq!(metadata.delete_chat(WS, "lobby", "c-1", NOW_MS + 6).await.unwrap(), None, "deleted already");
    assert_eq!(metadata.delete_chat(WS, "lobby", "c-none", NOW_MS + 6).await.unwrap(), None);
    assert_eq!(metadata.delete_chat(WS, "garden", "c-2", NOW_MS + 6).await.unwrap(), None, "another world's");
    // The same message written again (a retry that comes late) stays deleted.
    metadata.store_chat(&[a]).await.unwrap();
    assert_eq!(metadata.recent_chat(WS, "lobby", NOW_MS - DAY_MS, 200).await.unwrap(), [b]);
}

async fn chat_history_is_per_workspace_and_world_and_old_messages_are_pruned(backend: Backend) {
    let db = TestDb::new(backend).await;
    let metadata = db.open().await;
    let here = chat("c-1", ChatAudience::World, "ada", NOW_MS);
    let other_world = ChatRecord { world: "garden".into(), ..chat("c-1", ChatAudience::World, "bob", NOW_MS) };
    let other_workspace = ChatRecord { workspace: "globex".into(), ..here.clone() };
    let old = chat("c-0", ChatAudience::World, "ada", NOW_MS - 2 * DAY_MS);
    metadata.store_chat(&[here.clone(), other_world.clone(), other_workspace, old]).await.unwrap();
    assert_eq!(metadata.recent_chat(WS, "garden", NOW_MS - DAY_MS, 200).await.unwrap(), [other_world]);
    assert_eq!(metadata.prune_chat(NOW_MS - DAY_MS).await.unwrap(), 1, "only the message older than a day");
    assert_eq!(metadata.recent_chat(WS, "lobby", 0, 200).await.unwrap(), [here]);
}

async fn ingest_keys_are_found_by_hash_until_revoked(backend: Backend) {
    let db = TestDb::new(backend).await;
    let metadata = db.open().await;
    let key = |id: &str, created_at: i64| IngestKey {
        workspace: WS.into(),
        id: id.into(),
        world: "demo".into(),
        zone: "stage".into(),
        name: "Keynote".into(),
        created_by: "ada".into(),
        created_at,
        revoked_at: None,
    };
    metadata.create_ingest_key(&key("k1", 10), "hash-1").await.unwrap();
    metadata.create_ingest_key(&key("k2", 20), "hash-2").await.unwrap();
    // Another key with a hash already taken is refused.
    assert!(metadata.create_ingest_key(&key("k3", 30), "hash-1").await.is_err());
    assert_eq!(metadata.ingest_key_by_hash("hash-1").await.unwrap(), Some(key("k1", 10)));
    assert_eq!(metadata.ingest_key_by_hash("nothing").await.unwrap(), None);

    let revoked = metadata.revoke_ingest_key(WS, "k1", 40).await.unwrap();
    assert_eq!(revoked, Some(IngestKey { revoked_at: Some(40), ..key("k1", 10) }));
    assert_eq!(metadata.ingest_key_by_hash("hash-1").await.unwrap(), None, "a revoked key is refused");
    assert_eq!(metadata.revoke_ingest_key(WS, "k1", 50).await.unwrap(), None, "revoked once");
    assert_eq!(metadata.revoke_ingest_key("elsewhere", "k2", 50).await.unwrap(), None);
    let listed = metadata.ingest_keys(WS).await.unwrap();
    assert_eq!(listed, [key("k2", 20), IngestKey { revoked_at: Some(40), ..key("k1", 10) }]);
}
