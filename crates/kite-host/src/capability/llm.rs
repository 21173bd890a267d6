//! Large language models through `fermyon:spin/llm`: Kite serves no models, so every call
//! reports the model as not supported (what Spin answers when no models are configured).

use crate::InstanceState;
use wasmtime::component::{HasData, Linker};

mod bindings {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "kite:host/llm",
    });
}

use bindings::fermyon::spin::llm;

/// The per-instance state of an interface with nothing to hold.
pub struct NoModels;

struct Llm;

impl HasData for Llm {
    type Data<'a> = &'a mut NoModels;
}

pub fn add_to_linker(linker: &mut Linker<InstanceState>) -> anyhow::Result<()> {
    llm::add_to_linker::<_, Llm>(linker, |state| &mut state.llm)?;
    Ok(())
}

impl llm::Host for NoModels {
    fn infer(
        &mut self,
        _model: llm::InferencingModel,
        _prompt: String,
        _params: Option<llm::InferencingParams>,
    ) -> Result<llm::InferencingResult, llm::Error> {
        Err(llm::Error::ModelNotSupported)
    }

    fn generate_embeddings(
        &mut self,
        _model: llm::EmbeddingModel,
        _text: Vec<String>,
    ) -> Result<llm::EmbeddingsResult, llm::Error> {
        Err(llm::Error::ModelNotSupported)
    }
}
