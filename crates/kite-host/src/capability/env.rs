//! Environment variables: a component sees exactly the variables its manifest lists and
//! nothing from the host's environment.

use kite_app::ComponentSpec;
use wasmtime_wasi::WasiCtxBuilder;

pub struct EnvGrant {
    vars: Vec<(String, String)>,
}

impl EnvGrant {
    pub fn validate(spec: &ComponentSpec) -> anyhow::Result<Self> {
        Ok(EnvGrant {
            vars: spec.environment.clone(),
        })
    }

    pub fn vars(&self) -> &[(String, String)] {
        &self.vars
    }

    pub fn prepare(&self, wasi: &mut WasiCtxBuilder) {
        wasi.envs(&self.vars);
    }
}
