//! `phi-gateway seed`: demo data, or large synthetic sets for benchmarks.

use clap::Args;

use crate::config::Settings;
use crate::crypto::{Keyring, KeyringHandle};
use crate::{db, seed};

#[derive(Args)]
pub struct SeedArgs {
    /// About 50 classical herbs, practitioners in several cities, and a few
    /// submissions for the demo users.
    #[arg(long)]
    demo: bool,
    /// With --demo: the user id owning the first patient's submissions and
    /// consent (default demo-patient-1), e.g. a Payload user's `3`.
    #[arg(long, requires = "demo", value_name = "USER_ID")]
    demo_patient: Option<String>,
    /// With --demo: the user id linked to the first practitioner record
    /// (default demo-practitioner).
    #[arg(long, requires = "demo", value_name = "USER_ID")]
    demo_practitioner: Option<String>,
    /// This many synthetic practitioners (benchmarks).
    #[arg(long, default_value_t = 0)]
    practitioners: u64,
    /// This many synthetic herbs.
    #[arg(long, default_value_t = 0)]
    herbs: u64,
    /// This many synthetic symptom submissions (encrypted as real ones).
    #[arg(long, default_value_t = 0)]
    submissions: u64,
}

pub async fn run(args: SeedArgs, settings: &Settings) -> anyhow::Result<()> {
    let ring = Keyring::load(&settings.keys, settings.production()).await?;
    let pool = db::operator_pool(&settings.database).await?;
    let operator = crate::store::Db::new(pool.clone(), crate::store::Mode::of(&settings.database));
    crate::service::keycheck::compare(&operator, &ring).await?;
    if args.demo {
        let handle = std::sync::Arc::new(KeyringHandle::new(ring));
        let defaults = seed::DemoUsers::default();
        let users = seed::DemoUsers {
            patient: args.demo_patient.clone().unwrap_or(defaults.patient),
            practitioner: args
                .demo_practitioner
                .clone()
                .unwrap_or(defaults.practitioner),
        };
        let n = seed::demo(&operator, handle.clone(), &users).await?;
        println!("demo data: {n}");
        if args.practitioners + args.herbs + args.submissions > 0 {
            seed::bulk(
                &pool,
                &handle.current(),
                args.practitioners,
                args.herbs,
                args.submissions,
                &super::progress::Shown::new(),
            )
            .await?;
        }
    } else if args.practitioners + args.herbs + args.submissions > 0 {
        seed::bulk(
            &pool,
            &ring,
            args.practitioners,
            args.herbs,
            args.submissions,
            &super::progress::Shown::new(),
        )
        .await?;
    }
    Ok(())
}
