//! Tells which engine a component needs: one using the component model's async ABI
//! (WASI 0.3 handlers, async imports) runs on the concurrent engine, any other on the classic.

use wasmparser::{
    CanonicalFunction, CanonicalOption, ComponentDefinedType, ComponentType,
    ComponentTypeDeclaration, InstanceTypeDeclaration, Parser, Payload,
};

/// Whether `wasm` (a component) uses any part of the async ABI: async lifts or lowers,
/// streams, futures, error contexts, or the task built-ins. A scan of the sections, without
/// validation (compiling validates).
pub(crate) fn needs_concurrency(wasm: &[u8]) -> bool {
    for payload in Parser::new(0).parse_all(wasm) {
        let Ok(payload) = payload else {
            // Compiling reports what is wrong; the classic engine gives the plainer error.
            return false;
        };
        match payload {
            Payload::ComponentCanonicalSection(functions) => {
                for function in functions.into_iter().flatten() {
                    if is_async(&function) {
                        return true;
                    }
                }
            }
            Payload::ComponentTypeSection(types) => {
                for ty in types.into_iter().flatten() {
                    if type_is_async(&ty) {
                        return true;
                    }
                }
            }
            _ => {}
        }
    }
    false
}

/// Whether a type is (or declares, within an instance or component type) a stream, a
/// future or an async function.
fn type_is_async(ty: &ComponentType) -> bool {
    match ty {
        ComponentType::Defined(defined) => matches!(
            defined,
            ComponentDefinedType::Future(_) | ComponentDefinedType::Stream(_)
        ),
        ComponentType::Func(func) => func.async_,
        ComponentType::Instance(declarations) => declarations.iter().any(|d| match d {
            InstanceTypeDeclaration::Type(ty) => type_is_async(ty),
            _ => false,
        }),
        ComponentType::Component(declarations) => declarations.iter().any(|d| match d {
            ComponentTypeDeclaration::Type(ty) => type_is_async(ty),
            _ => false,
        }),
        _ => false,
    }
}

fn is_async(function: &CanonicalFunction) -> bool {
    let async_option = |options: &[CanonicalOption]| {
        options
            .iter()
            .any(|o| matches!(o, CanonicalOption::Async | CanonicalOption::Callback(_)))
    };
    match function {
        CanonicalFunction::Lift { options, .. } | CanonicalFunction::Lower { options, .. } => {
            async_option(options)
        }
        CanonicalFunction::ResourceNew { .. }
        | CanonicalFunction::ResourceDrop { .. }
        | CanonicalFunction::ResourceRep { .. }
        | CanonicalFunction::ThreadSpawnRef { .. }
        | CanonicalFunction::ThreadSpawnIndirect { .. }
        | CanonicalFunction::ThreadAvailableParallelism => false,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_component_is_classic() {
        let wasm = wat::parse_str(
            r#"(component
                (core module $m (func (export "f") (result i32) i32.const 1))
                (core instance $i (instantiate $m))
                (func (export "f") (result u32) (canon lift (core func $i "f"))))"#,
        )
        .unwrap();
        assert!(!needs_concurrency(&wasm));
    }

    #[test]
    fn an_import_declaring_an_async_function_needs_the_concurrent_engine() {
        let wasm = wat::parse_str(
            r#"(component
                (import "spin:key-value/key-value@3.0.0" (instance
                    (export "get" (func async (param "k" string) (result u32))))))"#,
        )
        .unwrap();
        assert!(needs_concurrency(&wasm));
    }

    #[test]
    fn an_async_lift_needs_the_concurrent_engine() {
        let wasm = wat::parse_str(
            r#"(component
                (core module $m
                  (func (export "f") (result i32) i32.const 0)
                  (func (export "cb") (param i32 i32 i32) (result i32) i32.const 0))
                (core instance $i (instantiate $m))
                (func (export "f") async
                  (canon lift (core func $i "f") async (callback (core func $i "cb")))))"#,
        )
        .unwrap();
        assert!(needs_concurrency(&wasm));
    }
}
