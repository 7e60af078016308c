//! Where settings come from besides the file: the process environment, or
//! a map (tests pass one, so they can run in parallel), and the helpers
//! that read a typed value from it.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// A source of environment variables; tests pass a map instead of the process
/// environment so they can run in parallel.
pub trait Env {
    fn var(&self, name: &str) -> Option<String>;
}

pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }
}

impl<S: std::hash::BuildHasher> Env for std::collections::HashMap<&str, &str, S> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name)
            .filter(|v| !v.is_empty())
            .map(|v| v.to_string())
    }
}

pub(super) fn parse_env<T: FromStr>(env: &dyn Env, name: &str) -> anyhow::Result<Option<T>>
where
    T::Err: fmt::Display,
{
    env.var(name)
        .map(|v| {
            v.parse::<T>()
                .map_err(|e| anyhow::anyhow!("{name}: cannot parse {v:?}: {e}"))
        })
        .transpose()
}

/// A duration in seconds: the environment's, else the file's, else the default.
pub(super) fn secs(
    env: &dyn Env,
    name: &str,
    file: Option<u64>,
    default: u64,
) -> anyhow::Result<Duration> {
    Ok(Duration::from_secs(
        parse_env(env, name)?.or(file).unwrap_or(default),
    ))
}
