//! What every question's rows share: the rootfs, the cgroups, the crun thread, the isolab binary.
//!
//! Each piece is built once per run and lent to the rows. A piece this host cannot provide is
//! kept as the reason it is missing, so every row that needs it says the same thing.

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
use std::sync::Arc;

/// Everything the rows share: the rootfs, cgroups, the crun thread, the isolab binary.
pub(crate) struct Shared {
    fixture: Result<Fixture, NotMeasured>,
    pub(crate) cgroups: Option<CgroupRoot>,
    crun_thread: Result<HiddenCgroup2Thread, NotMeasured>,
    isolab_exe: Option<PathBuf>,
    pub(crate) cpl0_native: Option<bool>,
    pub(crate) cpl0_detail: String,
}

impl Shared {
    pub(crate) fn new(
        config: &RunConfig,
        cpl0_native: Option<bool>,
        cpl0_detail: String,
    ) -> Shared {
        let fixture = match fixture::container_refusal() {
            Some(reason) => Err(reason),
            None => Fixture::new().map_err(|e| NotMeasured::Fixture(Arc::new(e))),
        };
        Shared {
            fixture,
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
        Ok(crate::observe::Target {
            isolab: self.isolab_exe()?.to_path_buf(),
            rootfs: fx.rootfs(),
            bundle: Some(fx.bundle()),
            home: fx.scratch().join("cli-home"),
            scratch: fx.scratch(),
        })
    }

    /// C9's start-up with 1, 8 and 32 layers, through the library.
    pub(crate) fn layer_start_cost(&self) -> crate::schema::Observation {
        let container = self
            .isolab_container(Variant::Overlay, &["/bin/true"])
            .and_then(|c| Ok((c, self.fixture()?.scratch())));
        match container {
            Ok((c, scratch)) => crate::observe::start_with_layers(c, &scratch),
            Err(reason) => {
                let mut o = crate::observe::start_with_layers_unmeasured();
                o.outcome = crate::schema::Finding::NotMeasured {
                    reason: reason.to_string(),
                };
                o
            }
        }
    }

    /// The bench rootfs, or why there is none.
    pub(crate) fn fixture(&self) -> Result<&Fixture, NotMeasured> {
        self.fixture.as_ref().map_err(Clone::clone)
    }

    /// The `isolab` binary, or why there is none.
    pub(crate) fn isolab_exe(&self) -> Result<&Path, NotMeasured> {
        self.isolab_exe
            .as_deref()
            .ok_or(NotMeasured::NeedsIsolabBinary)
    }

    /// The `isolab-runtime` binary (the OCI runtime command line) beside `isolab`, or why
    /// there is none.
    pub(crate) fn isolab_runtime_exe(&self) -> Result<PathBuf, NotMeasured> {
        let exe = self.isolab_exe()?.with_file_name("isolab-runtime");
        match exe.is_file() {
            true => Ok(exe),
            false => Err(NotMeasured::ToolMissing {
                tool: "isolab-runtime",
                fix: "cargo build --release -p isolab-runtime (or make dist), beside isolab",
            }),
        }
    }

    /// Row `name`, not measured because there is no bench rootfs.
    pub(crate) fn unavailable(&self, name: &str) -> Unavailable {
        let reason = match &self.fixture {
            Err(e) => e.clone(),
            Ok(_) => NotMeasured::Misbehaved("no rootfs".into()),
        };
        Unavailable::new(name, reason)
    }

    /// The bundle's spec with `args` as the workload.
    pub(crate) fn base_spec(&self, args: &[&str]) -> Result<ContainerSpec, NotMeasured> {
        let fx = self.fixture()?;
        let mut spec = isolab_container::oci::load_bundle(&fx.bundle())
            .map_err(|e| NotMeasured::Bundle(Arc::new(e)))?;
        spec.args = args.iter().map(|a| a.to_string()).collect();
        Ok(spec)
    }

    /// An isolab container of `variant` running `args` on the bench rootfs (not prepared).
    pub(crate) fn isolab_container(
        &self,
        variant: Variant,
        args: &[&str],
    ) -> Result<IsolabContainer<'_>, NotMeasured> {
        let spec = self.base_spec(args)?;
        let fx = self.fixture()?;
        Ok(IsolabContainer::new(
            variant,
            spec,
            fx.rootfs(),
            fx.scratch(),
            self.cgroups.as_ref(),
        ))
    }

    /// [`Shared::isolab_container`] as a row's environment, or the row not measured.
    pub(crate) fn container(&self, variant: Variant, args: &[&str]) -> Box<dyn Environment + '_> {
        match self.isolab_container(variant, args) {
            Ok(c) => Box::new(c),
            Err(reason) => Box::new(Unavailable::new(variant.name(), reason)),
        }
    }

    pub(crate) fn crun_via(&self) -> Result<&HiddenCgroup2Thread, NotMeasured> {
        self.crun_thread.as_ref().map_err(Clone::clone)
    }

    /// Writes a probe program into the rootfs; returns its path inside the container and on
    /// the host.
    pub(crate) fn probe(&self, name: &str, probe: Probe) -> Result<(String, PathBuf), NotMeasured> {
        let host = self.fixture()?.rootfs().join("probes").join(name);
        probe
            .write_to(&host)
            .map_err(NotMeasured::io(format!("writing probe {}", host.display())))?;
        Ok((format!("/probes/{name}"), host))
    }
}

/// Builds an argv from string slices.
pub(crate) fn os(args: &[&str]) -> Vec<OsString> {
    args.iter().map(OsString::from).collect()
}

/// A path as the text a command line takes.
pub(crate) fn path_str(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}
