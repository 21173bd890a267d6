//! Variables: a component's `variables`, rendered once at load from the app's resolved
//! values, served through `wasi:config/store`, `fermyon:spin/variables` and (on the
//! concurrent engine) Spin 4's async `spin:variables@3.0.0`.

use crate::InstanceState;
use kite_app::{is_valid_variable_name, ComponentSpec, ResolvedVariables};
use std::sync::Arc;
use wasmtime::component::{HasData, Linker};

mod bindings {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "kite:host/variables",
    });
}

mod bindings_v3 {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "kite:host/variables-v3",
    });
}

use bindings::fermyon::spin::variables as spin_variables;
use bindings::wasi::config::store as config_store;
use bindings_v3::spin::variables::variables as spin_variables_v3;

/// This component's variables with their values.
pub struct VariablesGrant {
    values: Arc<[(String, String)]>,
}

impl VariablesGrant {
    pub fn validate(spec: &ComponentSpec, resolved: &ResolvedVariables) -> anyhow::Result<Self> {
        let values: Vec<(String, String)> = resolved
            .for_component(&spec.variables)
            .into_iter()
            .map(|(name, value)| (name, value.expose().to_string()))
            .collect();
        Ok(VariablesGrant {
            values: values.into(),
        })
    }

    pub fn prepare(&self) -> ComponentVariables {
        ComponentVariables {
            values: self.values.clone(),
        }
    }
}

/// Per-instance view of the component's variables.
pub struct ComponentVariables {
    values: Arc<[(String, String)]>,
}

impl ComponentVariables {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.values
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Spin's answer for `name`: its value, or why there is none.
    fn spin_get(&self, name: &str) -> Result<String, SpinRefusal> {
        if !is_valid_variable_name(name) {
            return Err(SpinRefusal::InvalidName(format!(
                "{name:?} is not a variable name (lowercase letters, digits and `_`)"
            )));
        }
        self.lookup(name)
            .map(str::to_string)
            .ok_or_else(|| SpinRefusal::Undefined(format!("no variable named {name:?}")))
    }
}

/// Why Spin's `get` has no value, in both interface generations' terms.
enum SpinRefusal {
    InvalidName(String),
    Undefined(String),
}

struct Variables;

impl HasData for Variables {
    type Data<'a> = &'a mut ComponentVariables;
}

pub fn add_to_linker(linker: &mut Linker<InstanceState>) -> anyhow::Result<()> {
    config_store::add_to_linker::<_, Variables>(linker, |state| &mut state.variables)?;
    spin_variables::add_to_linker::<_, Variables>(linker, |state| &mut state.variables)?;
    Ok(())
}

/// Spin 4's `spin:variables@3.0.0`, for a linker on the concurrent engine.
pub fn add_v3_to_linker(linker: &mut Linker<InstanceState>) -> anyhow::Result<()> {
    spin_variables_v3::add_to_linker::<_, Variables>(linker, |state| &mut state.variables)?;
    Ok(())
}

impl config_store::Host for ComponentVariables {
    fn get(&mut self, key: String) -> Result<Option<String>, config_store::Error> {
        Ok(self.lookup(&key).map(str::to_string))
    }

    fn get_all(&mut self) -> Result<Vec<(String, String)>, config_store::Error> {
        Ok(self.values.to_vec())
    }
}

impl spin_variables::Host for ComponentVariables {
    fn get(&mut self, name: String) -> Result<String, spin_variables::Error> {
        self.spin_get(&name).map_err(|refusal| match refusal {
            SpinRefusal::InvalidName(why) => spin_variables::Error::InvalidName(why),
            SpinRefusal::Undefined(why) => spin_variables::Error::Undefined(why),
        })
    }
}

impl spin_variables_v3::Host for ComponentVariables {}

impl<T> spin_variables_v3::HostWithStore<T> for Variables {
    async fn get(
        accessor: &wasmtime::component::Accessor<T, Self>,
        name: String,
    ) -> Result<String, spin_variables_v3::Error> {
        accessor
            .with(|mut access| access.get().spin_get(&name))
            .map_err(|refusal| match refusal {
                SpinRefusal::InvalidName(why) => spin_variables_v3::Error::InvalidName(why),
                SpinRefusal::Undefined(why) => spin_variables_v3::Error::Undefined(why),
            })
    }
}
