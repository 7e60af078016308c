//! Gateway benchmarks against a real PostgreSQL: `bench/run.sh [what]`, where
//! what is `audit`, `sealer`, `proximity` or `all` (default). Prints the
//! figures recorded in BENCHMARKS.md. Needs PHI_PG_ADMIN_URL and
//! PHI_PG_APP_PASSWORD (bench/run.sh starts a private cluster and sets them).

use std::sync::Arc;
use std::time::{Duration, Instant};

use phi_gateway::audit::{chain, sealer, verify};
use phi_gateway::crypto::{Keyring, KeyringHandle};
use phi_gateway::domain::SecretText;
use phi_gateway::domain::submission::{NewSubmission, SubmissionStatus, Symptom};
use phi_gateway::identity::Principal;
use phi_gateway::service::{Crypt, Services, submissions};
use sqlx::postgres::PgPoolOptions;
use sqlx::{Executor, PgPool};

fn app_url(db: &str) -> String {
    role_url("phi_app", "PHI_PG_APP_PASSWORD", db)
}

fn role_url(role: &str, password_var: &str, db: &str) -> String {
    let admin = std::env::var("PHI_PG_ADMIN_URL").unwrap();
    let host = admin.split('@').nth(1).unwrap().split('/').next().unwrap();
    let pw = std::env::var(password_var).unwrap();
    format!("postgres://{role}:{pw}@{host}/{db}")
}

#[path = "../tests/api/testdb.rs"]
mod testdb;

/// A fresh migrated database, made the way the tests make theirs (a clone of
/// a template migrated once), kept for the run: (its name, a superuser pool).
async fn fresh_db() -> (String, PgPool) {
    let db: &'static testdb::TestDb = Box::leak(Box::new(testdb::TestDb::migrated().await));
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .connect(&db.admin_url())
        .await
        .unwrap();
    (db.name.clone(), pool)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn body(i: usize) -> NewSubmission {
    NewSubmission {
        symptoms: vec![Symptom {
            name: SecretText::from("Lower back pain"),
            severity: 5,
            onset: chrono::NaiveDate::from_ymd_opt(2026, 1, 1).unwrap(),
            notes: Some(SecretText::from("x".repeat(200))),
        }],
        notes: Some(SecretText::from("n".repeat(1000))),
        contact_email: Some(SecretText::from(format!("p{i}@example.org"))),
        date_of_birth: chrono::NaiveDate::from_ymd_opt(1980, 5, 5),
        region: None,
        status: SubmissionStatus::Submitted,
        practitioner_id: None,
    }
}

fn services(pool: PgPool, keyring: Arc<KeyringHandle>) -> Services {
    let db = phi_gateway::store::Db::new(pool, phi_gateway::store::Mode::default());
    Services::new(db.clone(), db, keyring)
}

/// One create as the service does it (seal four fields, insert, commit).
/// The audit entry is written by the table's trigger; the "without" side is
/// a database with the trigger disabled. `full` runs the real
/// `submissions::create` (validation and the response's decryption too).
async fn create_once(svc: &Services, who: &Principal, i: usize, full: bool) {
    if !full {
        let id = phi_gateway::service::new_id();
        let place = |c| phi_gateway::crypto::Place::new("symptom_submissions", c, id);
        let b = body(i);
        let c = Crypt::new(svc);
        let symptoms = c
            .seal(&serde_json::to_vec(&b.symptoms).unwrap(), place("symptoms"))
            .unwrap();
        let notes = c
            .seal(b.notes.as_ref().unwrap().as_bytes(), place("notes"))
            .unwrap();
        let email = c
            .seal(
                b.contact_email.as_ref().unwrap().as_bytes(),
                place("contact_email"),
            )
            .unwrap();
        let dob = c.seal(b"1980-05-05", place("date_of_birth")).unwrap();
        let mut tx = svc.pool.begin(who).await.unwrap();
        sqlx::query(
            "INSERT INTO symptom_submissions (id, owner_id, symptoms, notes, contact_email, date_of_birth) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(id)
        .bind(who.user_id.as_deref())
        .bind(symptoms)
        .bind(notes)
        .bind(email)
        .bind(dob)
        .fetch_one(&mut *tx)
        .await
        .unwrap();
        tx.commit().await.unwrap();
    } else {
        submissions::create(svc, who, body(i)).await.unwrap();
    }
}

async fn run_clients(
    svc: Arc<Services>,
    clients: usize,
    per_client: usize,
    full: bool,
) -> (Vec<Duration>, Duration) {
    let started = Instant::now();
    let mut handles = Vec::new();
    for c in 0..clients {
        let svc = svc.clone();
        handles.push(tokio::spawn(async move {
            let who = Principal::user("users", &format!("bench-{c}"), &[]);
            let mut lat = Vec::with_capacity(per_client);
            for i in 0..per_client {
                let t = Instant::now();
                create_once(&svc, &who, c * per_client + i, full).await;
                lat.push(t.elapsed());
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.await.unwrap());
    }
    all.sort();
    (all, started.elapsed())
}

/// Two identical databases on the same cluster, one with the audit trigger
/// disabled: the benchmark alternates single creates between them (in
/// alternating order), so drift in the machine (fsync, CPU frequency,
/// neighbours) falls on both sides alike instead of on whichever round was
/// running when it happened.
async fn ab_services(without: &str) -> (Arc<Services>, Arc<Services>) {
    let keyring = Arc::new(KeyringHandle::new(Keyring::generate(false).unwrap()));
    let mut sides = Vec::new();
    for audited in [true, false] {
        let (db, admin) = fresh_db().await;
        if !audited {
            admin.execute(without).await.unwrap();
        }
        // BENCH_SYNC_COMMIT=off takes the WAL flush out of both sides, to
        // tell CPU cost from commit (flush) cost.
        if std::env::var("BENCH_SYNC_COMMIT").is_ok_and(|v| v == "off") {
            admin
                .execute(format!("ALTER DATABASE {db} SET synchronous_commit = off").as_str())
                .await
                .unwrap();
        }
        let pool = PgPoolOptions::new()
            .max_connections(20)
            .connect(&app_url(&db))
            .await
            .unwrap();
        sides.push(Arc::new(services(pool, keyring.clone())));
    }
    let off = sides.pop().unwrap();
    (sides.pop().unwrap(), off)
}

/// p50 of each side and the median of the paired differences.
fn ab_report(label: &str, with: &mut [Duration], without: &mut [Duration], diffs: &mut [f64]) {
    with.sort();
    without.sort();
    diffs.sort_by(f64::total_cmp);
    let (p50w, p50o) = (percentile(with, 0.5), percentile(without, 0.5));
    println!(
        "{label}, 1 client, {} pairs: p50 with {:.3} ms, without {:.3} ms, overhead {:+.1}% \
         (median paired difference {:+.1} us; p99 {:.3} / {:.3} ms)",
        with.len(),
        p50w.as_secs_f64() * 1e3,
        p50o.as_secs_f64() * 1e3,
        (p50w.as_secs_f64() / p50o.as_secs_f64() - 1.0) * 100.0,
        diffs[diffs.len() / 2],
        percentile(with, 0.99).as_secs_f64() * 1e3,
        percentile(without, 0.99).as_secs_f64() * 1e3,
    );
}

/// `pairs` single creates on each side, alternating: (with, without,
/// paired differences in us).
async fn paired_creates(
    on: &Services,
    off: &Services,
    pairs: usize,
    full: bool,
) -> (Vec<Duration>, Vec<Duration>, Vec<f64>) {
    let who = Principal::user("users", "bench-0", &[]);
    // Warm up both sides (connections, plans, caches).
    for i in 0..300 {
        create_once(on, &who, i, full).await;
        create_once(off, &who, i, full).await;
    }
    let (mut with, mut without, mut diffs) = (vec![], vec![], vec![]);
    for i in 0..pairs {
        let order = if i % 2 == 0 { [on, off] } else { [off, on] };
        let mut took = [Duration::ZERO; 2];
        for (k, svc) in order.into_iter().enumerate() {
            let t = Instant::now();
            create_once(svc, &who, i, full).await;
            took[k] = t.elapsed();
        }
        let (w, o) = if i % 2 == 0 {
            (took[0], took[1])
        } else {
            (took[1], took[0])
        };
        with.push(w);
        without.push(o);
        diffs.push((w.as_secs_f64() - o.as_secs_f64()) * 1e6);
    }
    (with, without, diffs)
}

fn pairs() -> usize {
    std::env::var("BENCH_PAIRS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4000)
}

/// What the index a patient's access report reads (`audit_log_subject`,
/// migration 0016) costs a create: the same paired creates with and
/// without it.
async fn subject_index_bench() {
    let (on, off) = ab_services("DROP INDEX audit.audit_log_subject").await;
    let (mut with, mut without, mut diffs) = paired_creates(&on, &off, pairs(), true).await;
    ab_report(
        "submissions::create (full path) with the subject index vs without",
        &mut with,
        &mut without,
        &mut diffs,
    );
}

async fn audit_bench() {
    let (on, off) =
        ab_services("ALTER TABLE symptom_submissions DISABLE TRIGGER zz_audit_changes").await;
    if std::env::var("BENCH_SYNC_COMMIT").is_ok_and(|v| v == "off") {
        println!("(synchronous_commit = off)");
    }
    for full in [false, true] {
        let (mut with, mut without, mut diffs) = paired_creates(&on, &off, pairs(), full).await;
        let label = if full {
            "submissions::create (full path)"
        } else {
            "create (seal, identity, insert, commit)"
        };
        ab_report(label, &mut with, &mut without, &mut diffs);
    }
    for clients in [1, 4, 16] {
        let per = 3000 / clients;
        let (lat, took) = run_clients(on.clone(), clients, per, true).await;
        println!(
            "submissions::create (full path, audited), {clients:>2} clients: {:>6.0} creates/s, p50 {:.2} ms, p99 {:.2} ms",
            (clients * per) as f64 / took.as_secs_f64(),
            percentile(&lat, 0.5).as_secs_f64() * 1e3,
            percentile(&lat, 0.99).as_secs_f64() * 1e3
        );
    }
}

/// A daily verification on top of a long log: BENCH_VERIFY_ENTRIES (10
/// million) sealed and anchored, then BENCH_VERIFY_DAY (100,000) more; the
/// full verification against the incremental one from the anchored
/// checkpoint.
async fn verify_bench() {
    let (_, pool) = fresh_db().await;
    let env = |k: &str, d: i64| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let (n, day) = (
        env("BENCH_VERIFY_ENTRIES", 10_000_000),
        env("BENCH_VERIFY_DAY", 100_000),
    );
    let insert = |k: i64| {
        let pool = pool.clone();
        async move {
            sqlx::query(
                "INSERT INTO audit.log (actor_user, actor_roles, action, entity_type, entity_id, request_id, \
                 outcome, fields, purpose, subject) \
                 SELECT 'users:doc' || (i % 500), 'patient,practitioner', 'READ', 'symptom_submissions', \
                        md5(i::text), md5((i * 7)::text), 'success', '{notes,symptoms}', 'treatment', \
                        'users:p' || (i % 100000) FROM generate_series(1::bigint, $1) i",
            )
            .bind(k)
            .execute(&pool)
            .await
            .unwrap();
            // As autovacuum would before long: without statistics the
            // sealer's page query is planned for an empty log.
            sqlx::query("ANALYZE audit.log")
                .execute(&pool)
                .await
                .unwrap();
        }
    };
    let dir = std::env::temp_dir().join(format!("phi-bench-anchor-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let anchor_path = dir.join("anchor.jsonl");
    let signing = phi_gateway::audit::signing::SigningKeys::generate().unwrap();
    let public = signing.public();
    let sealing = sealer::Sealer {
        pool: pool.clone(),
        signing: Arc::new(signing),
        anchor: Some(phi_gateway::audit::anchor::Anchor::new(&anchor_path)),
    };
    let t = Instant::now();
    insert(n).await;
    sealer::seal_all(&pool).await.unwrap();
    sealing.checkpoint().await.unwrap();
    println!(
        "verify: {n} entries written and sealed in {:.0} s",
        t.elapsed().as_secs_f64()
    );
    insert(day).await;
    sealer::seal_all(&pool).await.unwrap();
    sealing.checkpoint().await.unwrap();
    sqlx::query("VACUUM ANALYZE audit.log")
        .execute(&pool)
        .await
        .unwrap();
    let anchored = phi_gateway::audit::anchor::Anchor::read(&anchor_path).unwrap();
    let keys = chain::VerifyKeys {
        public: Some(&public),
        keyring: None,
    };
    // The newest anchored checkpoint covers the day; start from the one
    // before it, as the next day's run would.
    let since = anchored.iter().min_by_key(|c| c.pos).unwrap();
    for (label, since) in [("incremental (one day)", Some(since)), ("full", None)] {
        let t = Instant::now();
        let v = verify::verify_with(
            &pool,
            keys,
            verify::Options {
                anchor: Some(&anchored),
                from: None,
                to: None,
                since,
                progress: &phi_gateway::progress::Quiet,
            },
        )
        .await
        .unwrap();
        println!(
            "verify, {label}: {} entries in {:.2} s = {:.0} entries/s ({:?})",
            v.entries_checked,
            t.elapsed().as_secs_f64(),
            v.entries_checked as f64 / t.elapsed().as_secs_f64(),
            v.first_problem
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

async fn sealer_bench() {
    let (_, pool) = fresh_db().await;
    // A backlog (a sealer that was stopped, an import): written by many
    // transactions of 1 to 1,000 entries, as requests and batches write it.
    let n: i64 = std::env::var("BENCH_SEALER_ENTRIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let (mut written, mut k) = (0i64, 0i64);
    while written < n {
        let size = [1, 10, 1000, 300, 3][(k % 5) as usize].min(n - written);
        sqlx::query(
            "INSERT INTO audit.log (actor_user, actor_roles, action, entity_type, entity_id, request_id, outcome, fields) \
             SELECT 'user-' || (i % 1000), 'patient', 'READ', 'symptom_submissions', gen_random_uuid()::text, \
                    gen_random_uuid()::text, 'success', '{notes,symptoms}' FROM generate_series(1, $1) i",
        )
        .bind(size)
        .execute(&pool)
        .await
        .unwrap();
        written += size;
        k += 1;
    }
    sqlx::query("ANALYZE audit.log")
        .execute(&pool)
        .await
        .unwrap();
    let t = Instant::now();
    let sealed = sealer::seal_all(&pool).await.unwrap();
    let took = t.elapsed();
    println!(
        "sealer: a backlog of {sealed} entries ({k} transactions) in {:.2} s = {:.0} entries/s",
        took.as_secs_f64(),
        sealed as f64 / took.as_secs_f64()
    );
    let signing = phi_gateway::audit::signing::SigningKeys::generate().unwrap();
    let public = signing.public();
    let sealing = sealer::Sealer {
        pool: pool.clone(),
        signing: Arc::new(signing),
        anchor: None,
    };
    sealing.checkpoint().await.unwrap();
    let t = Instant::now();
    let v = verify::verify(
        &pool,
        chain::VerifyKeys {
            public: Some(&public),
            keyring: None,
        },
        None,
        None,
        None,
    )
    .await
    .unwrap();
    println!(
        "verify: {} entries in {:.2} s = {:.0} entries/s ({:?})",
        v.entries_checked,
        t.elapsed().as_secs_f64(),
        v.entries_checked as f64 / t.elapsed().as_secs_f64(),
        v.first_problem
    );
}

async fn proximity_bench() {
    let (near_db, pool) = fresh_db().await;
    let n: u64 = std::env::var("BENCH_PRACTITIONERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let t = Instant::now();
    let ring = Keyring::generate(false).unwrap();
    phi_gateway::seed::bulk(&pool, &ring, n, 0, 0, &phi_gateway::progress::Quiet)
        .await
        .unwrap();
    println!(
        "seeded {n} practitioners in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let mut rng = phi_gateway::seed::Rng::new(7);
    let points: Vec<(f64, f64)> = (0..200)
        .map(|_| {
            let (_, _, _, lat, lon) = rng.pick(phi_gateway::seed::CITIES);
            (
                lat + (rng.unit() - 0.5) * 0.3,
                lon + (rng.unit() - 0.5) * 0.3,
            )
        })
        .collect();
    let filter = "earth_box(phi_earth($1, $2), $3) @> phi_earth(lat, lon) \
                  AND earth_distance(phi_earth($1, $2), phi_earth(lat, lon)) <= $3";
    let knn = format!(
        "SELECT id, earth_distance(phi_earth($1, $2), phi_earth(lat, lon)) FROM practitioners WHERE {filter} \
         ORDER BY phi_earth(lat, lon) <-> phi_earth($1, $2) LIMIT 20"
    );
    let sort = format!(
        "SELECT id, earth_distance(phi_earth($1, $2), phi_earth(lat, lon)) AS d FROM practitioners WHERE {filter} \
         ORDER BY d LIMIT 20"
    );
    let count = format!("SELECT count(*) FROM practitioners WHERE {filter}");
    let mut conn = pool.acquire().await.unwrap();
    for (name, sql) in [
        ("KNN (<->), nearest 20", knn.as_str()),
        ("CMS guide (sort by distance)", sort.as_str()),
        ("count in radius (totalDocs)", count.as_str()),
    ] {
        let mut lat = Vec::new();
        let mut in_radius = 0i64;
        for (i, (la, lo)) in points.iter().enumerate() {
            let t = Instant::now();
            let rows = sqlx::query(sql)
                .bind(la)
                .bind(lo)
                .bind(25_000.0f64)
                .fetch_all(&mut *conn)
                .await
                .unwrap();
            if i >= 20 {
                lat.push(t.elapsed());
            }
            if name.starts_with("count") {
                in_radius += sqlx::Row::get::<i64, _>(&rows[0], 0);
            }
        }
        lat.sort();
        print!(
            "proximity {n} rows, 25 km, {name}: p50 {:.2} ms, p99 {:.2} ms",
            percentile(&lat, 0.5).as_secs_f64() * 1e3,
            percentile(&lat, 0.99).as_secs_f64() * 1e3
        );
        if in_radius > 0 {
            print!(" (mean {} rows in radius)", in_radius / points.len() as i64);
        }
        println!();
    }
    // The whole service path (`GET /api/practitioners/near` without HTTP):
    // identity, RLS, the page, and the totalDocs count unless pagination=false.
    let app = PgPoolOptions::new()
        .max_connections(2)
        .connect(&app_url(&near_db))
        .await
        .unwrap();
    let svc = services(app, Arc::new(KeyringHandle::new(ring)));
    let who = Principal::anonymous();
    // With the count every query reads the table (see BENCHMARKS.md): 40
    // points are enough to time it.
    for pagination in [true, false] {
        let mut lat = Vec::new();
        let take = if pagination { 40 } else { points.len() };
        for (i, (la, lo)) in points.iter().take(take).enumerate() {
            let (q, near) = phi_gateway::query::parse(
                &format!("lat={la}&lon={lo}&radius_km=25&limit=20&pagination={pagination}"),
                &phi_gateway::schema::PRACTITIONERS,
                &who,
            )
            .unwrap();
            let t = Instant::now();
            let page = phi_gateway::service::practitioners::near(&svc, &who, q, near)
                .await
                .unwrap();
            if i >= 20 {
                lat.push(t.elapsed());
            }
            assert_eq!(page.docs.len(), 20);
        }
        lat.sort();
        println!(
            "proximity {n} rows, 25 km, practitioners::near, limit 20, pagination={pagination}: p50 {:.2} ms, p99 {:.2} ms",
            percentile(&lat, 0.5).as_secs_f64() * 1e3,
            percentile(&lat, 0.99).as_secs_f64() * 1e3
        );
    }
}

/// Two identical databases, one where nothing is audited (the triggers off,
/// `audit.append` a no-op): the read path's whole audit cost, paired as in
/// `audit_bench`.
async fn reads_bench() {
    let keyring = Arc::new(KeyringHandle::new(Keyring::generate(false).unwrap()));
    let mut sides = Vec::new();
    for audited in [true, false] {
        let (db, admin) = fresh_db().await;
        if !audited {
            admin
                .execute(
                    "ALTER TABLE symptom_submissions DISABLE TRIGGER zz_audit_changes; \
                     CREATE OR REPLACE FUNCTION audit.append(p_actor_user text, p_actor_collection text, \
                       p_actor_roles text, p_api_key_id uuid, p_request_id text, p_client_request_id text, \
                       p_client_addr text, p_actions audit.action[], p_entity_types text[], p_entity_ids text[], \
                       p_outcomes text[], p_reasons text[], p_fields text[], p_details text[], \
                       p_subjects text[]) RETURNS void \
                       LANGUAGE plpgsql SECURITY DEFINER AS $$ BEGIN END $$;",
                )
                .await
                .unwrap();
        }
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .connect(&app_url(&db))
            .await
            .unwrap();
        sides.push(Arc::new(services(pool, keyring.clone())));
    }
    let (on, off) = (sides[0].clone(), sides[1].clone());
    let who = Principal::user("users", "bench-0", &[]);
    // Ten submissions on each side to read back.
    let mut ids = [vec![], vec![]];
    for (k, svc) in [&on, &off].into_iter().enumerate() {
        for i in 0..10 {
            ids[k].push(submissions::create(svc, &who, body(i)).await.unwrap().id);
        }
    }
    let pairs: usize = std::env::var("BENCH_PAIRS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4000);
    let list_q = || {
        phi_gateway::query::parse::<phi_gateway::query::NoParams>(
            "limit=10",
            &phi_gateway::schema::SUBMISSIONS,
            &Principal::user("users", "bench-0", &[]),
        )
        .unwrap()
        .0
    };
    for what in ["get", "list", "create"] {
        let run = |svc: Arc<Services>, i: usize, id: uuid::Uuid| {
            let who = who.clone();
            async move {
                let t = Instant::now();
                match what {
                    "get" => drop(
                        submissions::get(&svc, &who, id, &Default::default())
                            .await
                            .unwrap(),
                    ),
                    "list" => drop(
                        submissions::list(&svc, &who, list_q(), phi_gateway::query::NoParams {})
                            .await
                            .unwrap(),
                    ),
                    _ => drop(submissions::create(&svc, &who, body(i)).await.unwrap()),
                }
                t.elapsed()
            }
        };
        for i in 0..300 {
            run(on.clone(), i, ids[0][i % 10]).await;
            run(off.clone(), i, ids[1][i % 10]).await;
        }
        let (mut with, mut without, mut diffs) = (vec![], vec![], vec![]);
        for i in 0..pairs {
            let (w, o) = if i % 2 == 0 {
                let w = run(on.clone(), i, ids[0][i % 10]).await;
                (w, run(off.clone(), i, ids[1][i % 10]).await)
            } else {
                let o = run(off.clone(), i, ids[1][i % 10]).await;
                (run(on.clone(), i, ids[0][i % 10]).await, o)
            };
            with.push(w);
            without.push(o);
            diffs.push((w.as_secs_f64() - o.as_secs_f64()) * 1e6);
        }
        let label = match what {
            "get" => "submissions::get (read by id: READ entry)",
            "list" => "submissions::list (10 documents: LIST + 10 READ entries, one statement)",
            _ => "submissions::create (trigger entry, facts in the same statement)",
        };
        ab_report(label, &mut with, &mut without, &mut diffs);
    }
}

/// Peak resident memory of this process, in MiB.
fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

/// `BENCH_AUDIT_ENTRIES` (1M) sealed entries, exported through the real
/// server's HTTP route as NDJSON and FHIR (entries/s, time per 10% of the
/// export from first to last, peak memory), then verified by the real
/// binary's `verify-export` (time, peak memory).
async fn export_bench() {
    let n: i64 = std::env::var("BENCH_AUDIT_ENTRIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let (export_db, pool) = fresh_db().await;
    let t = Instant::now();
    let mut done = 0;
    while done < n {
        let k = (n - done).min(200_000);
        sqlx::query(
            "INSERT INTO audit.log (actor_user, actor_collection, actor_roles, action, entity_type, entity_id, \
             request_id, client_addr, outcome, fields) \
             SELECT 'users:u' || (i % 1000), 'users', 'patient', 'READ', 'symptom_submissions', \
                    gen_random_uuid()::text, gen_random_uuid()::text, '10.0.0.' || (i % 250), 'success', \
                    '{notes,symptoms}' FROM generate_series(1, $1) i",
        )
        .bind(k)
        .execute(&pool)
        .await
        .unwrap();
        done += k;
    }
    let sealed = sealer::seal_all(&pool).await.unwrap();
    println!(
        "export: {sealed} entries inserted and sealed in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    // As autovacuum leaves a log that has been there a while (hint bits
    // set): the first read of freshly inserted rows would otherwise write.
    sqlx::query("VACUUM (ANALYZE) audit.log")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("VACUUM (ANALYZE) audit.chain")
        .execute(&pool)
        .await
        .unwrap();
    let dir = std::env::temp_dir().join(format!("phi-bench-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let signing = phi_gateway::audit::signing::SigningKeys::generate().unwrap();
    let key = dir.join("signing.json");
    let public = dir.join("verify.json");
    signing.write_file(&key, false).unwrap();
    std::fs::write(&public, signing.public().to_file_text()).unwrap();
    let ring = Keyring::generate(false).unwrap();
    let env: std::collections::HashMap<&str, String> = [
        ("PHI_ENVIRONMENT", "development".to_string()),
        ("DATABASE_URL", app_url(&export_db)),
        (
            "AUDIT_SEALER_DATABASE_URL",
            role_url("phi_sealer", "PHI_PG_SEALER_PASSWORD", &export_db),
        ),
        ("PHI_AUDIT_SIGNING_KEY", key.to_str().unwrap().to_string()),
        ("PAYLOAD_SECRET", "bench".to_string()),
        ("PHI_PORT", "0".to_string()),
        ("PHI_ANALYTICS_REFRESH_SECS", "0".to_string()),
        ("DATABASE_TLS_MODE", "disable".to_string()),
    ]
    .into_iter()
    .collect();
    let env_ref: std::collections::HashMap<&str, &str> =
        env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let settings = phi_gateway::config::Settings::from_parts("", None, &env_ref).unwrap();
    let app = phi_gateway::startup::Application::build_with_keyring(&settings, ring)
        .await
        .unwrap();
    let port = app.port();
    tokio::spawn(app.run_until_stopped());
    let verifier = JwtVerifierForBench::new("bench").token("aud", &["auditor"]);
    let client = {
        phi_gateway::crypto::kek::install_tls_provider();
        reqwest::Client::new()
    };
    for format in ["ndjson", "fhir"] {
        let rss_before = peak_rss_mib();
        let t = Instant::now();
        let mut res = client
            .get(format!(
                "http://127.0.0.1:{port}/api/audit/export?format={format}"
            ))
            .header("authorization", format!("JWT {verifier}"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let file = dir.join(format!("export.{format}"));
        let mut out = std::io::BufWriter::new(std::fs::File::create(&file).unwrap());
        let (mut lines, mut marks, mut last) = (0i64, Vec::new(), Instant::now());
        let step = (n / 10).max(1);
        while let Some(chunk) = res.chunk().await.unwrap() {
            std::io::Write::write_all(&mut out, &chunk).unwrap();
            let before = lines;
            lines += chunk.iter().filter(|b| **b == b'\n').count() as i64;
            if before / step != lines / step {
                marks.push(last.elapsed());
                last = Instant::now();
            }
        }
        std::io::Write::flush(&mut out).unwrap();
        let took = t.elapsed();
        let deciles: Vec<String> = marks
            .iter()
            .map(|d| format!("{:.2}", d.as_secs_f64()))
            .collect();
        println!(
            "export {format} over HTTP: {} lines in {:.1} s = {:.0} entries/s; seconds per tenth: [{}]; \
             peak RSS of the benchmark process (server + client) {:.0} MiB (before {:.0} MiB)",
            lines,
            took.as_secs_f64(),
            (lines - 1) as f64 / took.as_secs_f64(),
            deciles.join(", "),
            peak_rss_mib(),
            rss_before
        );
        if let Ok(bin) = std::env::var("PHI_BENCH_BIN") {
            let t = Instant::now();
            let status = std::process::Command::new(bin)
                .args(["audit", "verify-export"])
                .arg(&file)
                .arg("--public-key")
                .arg(&public)
                .status()
                .unwrap();
            assert!(status.success());
            let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
            // SAFETY: getrusage only writes into the struct we own.
            unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
            println!(
                "verify-export {format}: {:.1} s, {:.0} MiB file, peak RSS of any child so far {:.0} MiB",
                t.elapsed().as_secs_f64(),
                std::fs::metadata(&file).unwrap().len() as f64 / 1048576.0,
                usage.ru_maxrss as f64 / 1024.0
            );
        }
    }
    std::fs::remove_dir_all(dir).unwrap();
}

/// Payload-style tokens for the benchmark's requests.
struct JwtVerifierForBench(phi_gateway::auth::JwtVerifier);

impl JwtVerifierForBench {
    fn new(secret: &str) -> Self {
        Self(phi_gateway::auth::JwtVerifier::new(
            &secret.to_string().into(),
            vec!["users".into()],
            30,
        ))
    }

    fn token(&self, user: &str, roles: &[&str]) -> String {
        let now = chrono::Utc::now().timestamp();
        self.0.sign(&serde_json::json!({
            "id": user, "collection": "users", "iat": now, "exp": now + 3600, "roles": roles
        }))
    }
}

fn main() {
    let what = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .unwrap_or_else(|| "all".into());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        if what == "all" || what == "audit" {
            audit_bench().await;
        }
        if what == "all" || what == "subject-index" {
            subject_index_bench().await;
        }
        if what == "all" || what == "reads" {
            reads_bench().await;
        }
        if what == "verify" {
            verify_bench().await;
        }
        if what == "all" || what == "sealer" {
            sealer_bench().await;
        }
        if what == "all" || what == "export" {
            export_bench().await;
        }
        if what == "all" || what == "proximity" {
            proximity_bench().await;
        }
    });
}
