//! What every question's rows share: the rootfs, the cgroups, the crun thread, the isolab binary.

use crate::environment::{
    Environment, HiddenCgroup2Thread, IsolabContainer, NotMeasured, Unavailable, Variant,
};
use crate::fixture::{self, Fixture};
use crate::probes::Probe;
use crate::runner::RunConfig;
use isolab_cgroups::CgroupRoot;
use isolab_container::ContainerSpec;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// Everything the rows share: the rootfs, cgroups, the crun thread, the isolab binary.
pub(crate) struct Shared {
    pub(crate) fixture: Option<Fixture>,
    pub(crate) fixture_error: Option<String>,
    pub(crate) cgroups: Option<CgroupRoot>,
    pub(crate) crun_thread: Result<HiddenCgroup2Thread, NotMeasured>,
    pub(crate) isolab_exe: Option<PathBuf>,
    pub(crate) cpl0_native: Option<bool>,
    pub(crate) cpl0_detail: String,
}

impl Shared {
    pub(crate) fn new(
        config: &RunConfig,
        cpl0_native: Option<bool>,
        cpl0_detail: String,
    ) -> Shared {
        let (fixture, fixture_error) = match fixture::container_skip_reason() {
            Some(reason) => (None, Some(reason)),
            None => match Fixture::new() {
                Ok(f) => (Some(f), None),
                Err(e) => (None, Some(format!("building the bench rootfs: {e}"))),
            },
        };
        Shared {
            fixture,
            fixture_error,
            cgroups: CgroupRoot::detect().ok(),
            crun_thread: HiddenCgroup2Thread::start(),
            isolab_exe: config.isolab_exe.clone(),
            cpl0_native,
            cpl0_detail,
        }
    }

    /// What the observations run against: the bench rootfs and bundle, the isolab binary and
    /// the same private store as the `isolab-cli-*` rows.
    pub(crate) fn observe_target(&self) -> Result<crate::observe::Target, NotMeasured> {
        let fx = self.fixture()?;
        let isolab = self.isolab_exe.clone().ok_or_else(|| {
            NotMeasured("needs the isolab binary (run it as `isolab bench`)".into())
        })?;
        Ok(crate::observe::Target {
            isolab,
            rootfs: fx.rootfs(),
            bundle: Some(fx.bundle()),
            home: fx.scratch().join("cli-home"),
            scratch: fx.scratch(),
        })
    }

    /// C9's start-up with 1, 8 and 32 layers, through the library.
    pub(crate) fn layer_start_cost(&self) -> crate::schema::Observation {
        let container = self.base_spec(&["/bin/true"]).and_then(|spec| {
            let fx = self.fixture().map_err(|e| e.0)?;
            Ok((
                IsolabContainer::new(
                    Variant::Overlay,
                    spec,
                    fx.rootfs(),
                    fx.scratch(),
                    self.cgroups.as_ref(),
                ),
                fx.scratch(),
            ))
        });
        match container {
            Ok((c, scratch)) => crate::observe::start_with_layers(c, &scratch),
            Err(reason) => {
                let mut o = crate::observe::start_with_layers_unmeasured();
                o.outcome = crate::schema::Finding::NotMeasured { reason };
                o
            }
        }
    }

    /// The bench rootfs, or why there is none.
    pub(crate) fn fixture(&self) -> Result<&Fixture, NotMeasured> {
        self.fixture.as_ref().ok_or_else(|| {
            NotMeasured(
                self.fixture_error
                    .clone()
                    .unwrap_or_else(|| "no rootfs".into()),
            )
        })
    }

    pub(crate) fn unavailable(&self, name: &str) -> Unavailable {
        Unavailable {
            name: name.into(),
            reason: self
                .fixture_error
                .clone()
                .unwrap_or_else(|| "no rootfs".into()),
        }
    }

    /// The bundle's spec with `args` as the workload.
    pub(crate) fn base_spec(&self, args: &[&str]) -> Result<ContainerSpec, String> {
        let fx = self.fixture.as_ref().ok_or_else(|| {
            self.fixture_error
                .clone()
                .unwrap_or_else(|| "no rootfs".into())
        })?;
        let mut spec = isolab_container::oci::load_bundle(&fx.bundle())
            .map_err(|e| format!("loading the bench bundle: {e}"))?;
        spec.args = args.iter().map(|a| a.to_string()).collect();
        Ok(spec)
    }

    pub(crate) fn container(&self, variant: Variant, args: &[&str]) -> Box<dyn Environment + '_> {
        match (self.base_spec(args), &self.fixture) {
            (Ok(spec), Some(fx)) => Box::new(IsolabContainer::new(
                variant,
                spec,
                fx.rootfs(),
                fx.scratch(),
                self.cgroups.as_ref(),
            )),
            (Err(reason), _) => Box::new(Unavailable {
                name: variant.name().into(),
                reason,
            }),
            (Ok(_), None) => Box::new(self.unavailable(variant.name())),
        }
    }

    pub(crate) fn crun_via(&self) -> Result<&HiddenCgroup2Thread, NotMeasured> {
        self.crun_thread.as_ref().map_err(Clone::clone)
    }

    /// Writes a probe program into the rootfs; returns its path inside the container and on
    /// the host.
    pub(crate) fn probe(&self, name: &str, probe: Probe) -> Result<(String, PathBuf), String> {
        let fx = self.fixture.as_ref().ok_or_else(|| {
            self.fixture_error
                .clone()
                .unwrap_or_else(|| "no rootfs".into())
        })?;
        let host = fx.rootfs().join("probes").join(name);
        probe
            .write_to(&host)
            .map_err(|e| format!("writing probe {}: {e}", host.display()))?;
        Ok((format!("/probes/{name}"), host))
    }
}

pub(crate) fn os(args: &[&str]) -> Vec<OsString> {
    args.iter().map(OsString::from).collect()
}

pub(crate) fn path_str(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}
