//! The request's transaction, and the connections an HTTP worker keeps
//! between its requests.
//!
//! sqlx pings every connection given back to its pool (one more round trip
//! per request, after the reply: BENCHMARKS.md). A connection whose COMMIT
//! just succeeded needs no such test, so an HTTP worker keeps it for its
//! next request instead ("held"), and gives it back to the pool, ping and
//! all, once it sits unused for a second (`sweep`), after it has been held
//! for `HOLD_AT_MOST`, or when its transaction did not commit. A request
//! that finds nothing held waits on the pool and on the held list at once,
//! so a connection held by this worker never leaves a request of it
//! waiting for the pool. Threads other than the HTTP workers (background
//! tasks, tools, tests) use the pool as sqlx does.

use std::cell::RefCell;
use std::collections::HashMap;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use sqlx::pool::PoolConnection;
use sqlx::postgres::PgTransactionManager;
use sqlx::{PgConnection, PgPool, Postgres, TransactionManager};
use tokio::sync::Notify;

/// A connection idle this long is pinged before use: it goes back to the
/// pool, whose `before_acquire` does that (db.rs).
const IDLE_AT_MOST: Duration = Duration::from_secs(1);
/// A connection goes back to the pool at least this often, so the pool's
/// lifetime and health rules still apply to it.
const HOLD_AT_MOST: Duration = Duration::from_secs(30);

/// An open transaction on a pooled connection. Dropped without `commit`,
/// it is rolled back (the ROLLBACK is sent with the pool's ping, as sqlx's
/// own `Transaction` does).
pub struct Tx {
    conn: Option<PoolConnection<Postgres>>,
    open: bool,
    /// Whether its statements may be prepared by name (`store::Mode`).
    persistent: bool,
    key: usize,
    held_since: Option<Instant>,
}

impl Tx {
    /// Sends BEGIN on a connection from `pool` (one held by this worker
    /// when there is one).
    pub(super) async fn begin(pool: &PgPool, persistent: bool) -> Result<Tx, sqlx::Error> {
        let key = key_of(pool);
        let (mut conn, held_since) = acquire(pool, key).await?;
        PgTransactionManager::begin(&mut conn, None).await?;
        Ok(Tx {
            conn: Some(conn),
            open: true,
            persistent,
            key,
            held_since,
        })
    }

    /// A connection from `pool` (one held by this worker when there is one)
    /// with no transaction open: each statement sent on it is a
    /// transaction of its own. Kept by the worker afterwards, as after a
    /// commit.
    pub(super) async fn unbegun(pool: &PgPool, persistent: bool) -> Result<Tx, sqlx::Error> {
        let key = key_of(pool);
        let (conn, held_since) = acquire(pool, key).await?;
        Ok(Tx {
            conn: Some(conn),
            open: false,
            persistent,
            key,
            held_since,
        })
    }

    /// Whether its statements may be prepared by name.
    pub fn persistent(&self) -> bool {
        self.persistent
    }

    pub async fn commit(mut self) -> Result<(), sqlx::Error> {
        PgTransactionManager::commit(self.conn_mut()).await?;
        self.open = false;
        Ok(())
    }

    pub async fn rollback(mut self) -> Result<(), sqlx::Error> {
        PgTransactionManager::rollback(self.conn_mut()).await?;
        self.open = false;
        Ok(())
    }

    fn conn_mut(&mut self) -> &mut PgConnection {
        self.conn
            .as_mut()
            .expect("a Tx has its connection until dropped")
    }
}

impl Deref for Tx {
    type Target = PgConnection;
    fn deref(&self) -> &PgConnection {
        self.conn
            .as_ref()
            .expect("a Tx has its connection until dropped")
    }
}

impl DerefMut for Tx {
    fn deref_mut(&mut self) -> &mut PgConnection {
        self.conn_mut()
    }
}

impl Drop for Tx {
    fn drop(&mut self) {
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        if BROKEN.with(|b| b.replace(false)) {
            // This request lost its connection (the server went away: a
            // failover, a restart). The ones this worker keeps are most
            // likely gone too: all go back to the pool, which tests each
            // before lending it again, instead of being handed to the next
            // requests one failure at a time for up to HOLD_AT_MOST.
            drop(conn);
            let stale = HELD.try_with(|h| {
                h.try_borrow_mut()
                    .map(|mut h| h.sweep(Duration::ZERO))
                    .unwrap_or_default()
            });
            for c in stale.unwrap_or_default() {
                release(c);
            }
            return;
        }
        if self.open {
            PgTransactionManager::start_rollback(&mut conn);
            // Back to the pool, whose ping sends the ROLLBACK and closes
            // the connection if it fails.
            drop(conn);
            return;
        }
        let since = self.held_since.unwrap_or_else(Instant::now);
        if since.elapsed() >= HOLD_AT_MOST {
            drop(conn);
            return;
        }
        // (Kept outside the closure: were this thread's list gone, a
        // connection moved into it would be dropped there, runtime or not.)
        let mut conn = Some(conn);
        let _ = HELD.try_with(|h| {
            if let Ok(mut h) = h.try_borrow_mut()
                && let Some(c) = conn.take()
            {
                h.put(self.key, c, since);
            }
        });
        if let Some(c) = conn {
            release(c);
        }
    }
}

/// Back to its pool. Where no runtime is left (a thread's end), sqlx would
/// panic spawning the return: it gets a runtime of its own, whose end
/// closes the connection.
fn release(conn: PoolConnection<Postgres>) {
    if tokio::runtime::Handle::try_current().is_ok() {
        drop(conn);
        return;
    }
    let conn = std::cell::Cell::new(Some(conn));
    let closed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let rt = tokio::runtime::Builder::new_current_thread().build()?;
        let _in = rt.enter();
        drop(conn.take());
        Ok::<_, std::io::Error>(())
    }));
    if !matches!(closed, Ok(Ok(()))) {
        // Kept open until the process ends rather than aborting it.
        std::mem::forget(conn.take());
    }
}

/// A pool's identity: the address of its connect options, which the pool
/// keeps (and a held connection keeps the pool) alive.
fn key_of(pool: &PgPool) -> usize {
    Arc::as_ptr(&pool.connect_options()) as usize
}

struct HeldConn {
    key: usize,
    conn: PoolConnection<Postgres>,
    /// When it was last given back.
    idle_since: Instant,
    /// When this worker first kept it.
    held_since: Instant,
}

#[derive(Default)]
struct Held {
    /// How many guards of this thread's apps are live.
    enabled: usize,
    conns: Vec<HeldConn>,
    notify: Arc<Notify>,
    counts: HashMap<usize, Arc<AtomicUsize>>,
}

thread_local! {
    static HELD: RefCell<Held> = RefCell::new(Held::default());
    /// A statement on this thread found its connection gone (set by
    /// `StoreError::from`, read when the request's `Tx` is dropped).
    static BROKEN: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// The connection in use on this thread failed as a connection (I/O, TLS,
/// the server shutting down or refusing): the request's `Tx` is not kept
/// when dropped, nor are the others this worker holds.
pub(super) fn connection_broken() {
    let _ = BROKEN.try_with(|b| b.set(true));
}

/// How many connections of each pool the workers hold, for the health
/// figures (a held connection is idle, though the pool counts it in use).
static COUNTS: OnceLock<Mutex<HashMap<usize, Arc<AtomicUsize>>>> = OnceLock::new();

impl Held {
    fn count(&mut self, key: usize) -> &AtomicUsize {
        self.counts.entry(key).or_insert_with(|| {
            let mut all = COUNTS
                .get_or_init(Default::default)
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            all.entry(key).or_default().clone()
        })
    }

    fn put(&mut self, key: usize, conn: PoolConnection<Postgres>, held_since: Instant) {
        if self.enabled == 0 {
            release(conn);
            return;
        }
        self.count(key).fetch_add(1, Ordering::Relaxed);
        self.conns.push(HeldConn {
            key,
            conn,
            idle_since: Instant::now(),
            held_since,
        });
        self.notify.notify_one();
    }

    /// The most recently used connection of `key`'s pool, if it has not
    /// sat idle too long. Those that have go back to the pool.
    fn take(&mut self, key: usize) -> Option<(PoolConnection<Postgres>, Instant)> {
        loop {
            let i = self.conns.iter().rposition(|c| c.key == key)?;
            let c = self.conns.swap_remove(i);
            self.count(key).fetch_sub(1, Ordering::Relaxed);
            if c.idle_since.elapsed() < IDLE_AT_MOST {
                return Some((c.conn, c.held_since));
            }
            drop(c.conn);
        }
    }

    /// Takes out the connections idle `idle` or more, to give back.
    fn sweep(&mut self, idle: Duration) -> Vec<PoolConnection<Postgres>> {
        let mut stale = Vec::new();
        let mut i = 0;
        while i < self.conns.len() {
            if self.conns[i].idle_since.elapsed() >= idle {
                let c = self.conns.swap_remove(i);
                self.count(c.key).fetch_sub(1, Ordering::Relaxed);
                stale.push(c.conn);
            } else {
                i += 1;
            }
        }
        stale
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        // At thread exit the worker's runtime is gone, and a pooled
        // connection dropped without one would panic (sqlx spawns its
        // return): close them directly.
        for c in self.conns.drain(..) {
            if let Some(n) = self.counts.get(&c.key) {
                n.fetch_sub(1, Ordering::Relaxed);
            }
            release(c.conn);
        }
    }
}

/// How many acquires timed out, and the microseconds requests waited for
/// the pool, since the process started (`acquire_figures`, the metrics).
static ACQUIRE_TIMEOUTS: AtomicU64 = AtomicU64::new(0);
static ACQUIRE_WAIT_US: AtomicU64 = AtomicU64::new(0);

/// Acquires that timed out, and the seconds spent waiting for the pool
/// (a connection held by the worker is taken without waiting).
pub fn acquire_figures() -> (u64, f64) {
    (
        ACQUIRE_TIMEOUTS.load(Ordering::Relaxed),
        ACQUIRE_WAIT_US.load(Ordering::Relaxed) as f64 / 1e6,
    )
}

async fn acquire(
    pool: &PgPool,
    key: usize,
) -> Result<(PoolConnection<Postgres>, Option<Instant>), sqlx::Error> {
    let started = Instant::now();
    let got = acquire_inner(pool, key).await;
    // Taken from those this worker held: no wait to count.
    if !matches!(got, Ok((_, Some(_)))) {
        let waited = started.elapsed().as_micros() as u64;
        ACQUIRE_WAIT_US.fetch_add(waited, Ordering::Relaxed);
    }
    if matches!(got, Err(sqlx::Error::PoolTimedOut)) {
        ACQUIRE_TIMEOUTS.fetch_add(1, Ordering::Relaxed);
    }
    got
}

async fn acquire_inner(
    pool: &PgPool,
    key: usize,
) -> Result<(PoolConnection<Postgres>, Option<Instant>), sqlx::Error> {
    let Some(notify) = HELD.with(|h| {
        let h = h.borrow();
        (h.enabled > 0).then(|| h.notify.clone())
    }) else {
        return Ok((pool.acquire().await?, None));
    };
    if let Some((conn, since)) = HELD.with(|h| h.borrow_mut().take(key)) {
        return Ok((conn, Some(since)));
    }
    // Nothing held: wait for the pool, or for a request of this worker to
    // finish with its connection, whichever comes first. The pool's answer
    // is not thrown away when the other comes first (a connection it has
    // started to open would be closed half made, and another opened for the
    // next request): it joins the held ones.
    let mut from_pool = Box::pin(pool.acquire());
    loop {
        let notified = notify.notified();
        let mut notified = std::pin::pin!(notified);
        notified.as_mut().enable();
        if let Some((conn, since)) = HELD.with(|h| h.borrow_mut().take(key)) {
            tokio::task::spawn_local(async move {
                if let Ok(conn) = from_pool.await {
                    let now = Instant::now();
                    let _ = HELD.try_with(|h| h.borrow_mut().put(key, conn, now));
                }
            });
            return Ok((conn, Some(since)));
        }
        tokio::select! {
            biased;
            conn = &mut from_pool => return Ok((conn?, None)),
            () = notified => {}
        }
    }
}

/// Makes this thread (an HTTP worker's) keep connections between its
/// requests, until the returned guard is dropped (the worker's app, while
/// its runtime still runs), which gives them all back. Must be called on
/// the worker's runtime: it starts the task that gives idle ones back.
pub fn hold_connections_on_this_thread() -> HoldGuard {
    let first = HELD.with(|h| {
        let mut h = h.borrow_mut();
        h.enabled += 1;
        h.enabled == 1
    });
    if first {
        tokio::task::spawn_local(async {
            let mut tick = tokio::time::interval(IDLE_AT_MOST / 2);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let stale = HELD.with(|h| h.borrow_mut().sweep(IDLE_AT_MOST));
                stale.into_iter().for_each(release);
            }
        });
    }
    HoldGuard(std::marker::PhantomData)
}

/// See [`hold_connections_on_this_thread`]. Not `Send`: it belongs to its
/// thread.
pub struct HoldGuard(std::marker::PhantomData<*const ()>);

impl Drop for HoldGuard {
    fn drop(&mut self) {
        let all = HELD
            .try_with(|h| {
                let mut h = h.borrow_mut();
                h.enabled = h.enabled.saturating_sub(1);
                if h.enabled == 0 {
                    h.sweep(Duration::ZERO)
                } else {
                    Vec::new()
                }
            })
            .unwrap_or_default();
        all.into_iter().for_each(release);
    }
}

/// How many connections of `pool` the workers hold now.
pub fn held(pool: &PgPool) -> usize {
    let key = key_of(pool);
    COUNTS
        .get()
        .and_then(|all| {
            all.lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&key)
                .map(|n| n.load(Ordering::Relaxed))
        })
        .unwrap_or(0)
}
