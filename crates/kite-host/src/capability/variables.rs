//! Variables: a component's `variables`, rendered once at load from the app's resolved
//! values, served through `wasi:config/store` and `fermyon:spin/variables`.

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

use bindings::fermyon::spin::variables as spin_variables;
use bindings::wasi::config::store as config_store;

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
        if !is_valid_variable_name(&name) {
            return Err(spin_variables::Error::InvalidName(format!(
                "{name:?} is not a variable name (lowercase letters, digits and `_`)"
            )));
        }
        self.lookup(&name)
            .map(str::to_string)
            .ok_or_else(|| spin_variables::Error::Undefined(format!("no variable named {name:?}")))
    }
}
