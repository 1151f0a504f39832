//! Loads the GGUF weights for candle. Candle has no SIMD kernel for Q4_1 (it multiplies those
//! blocks with scalar code), so Q4_1 tensors are re-quantized to Q8_0 at load time: Q8_0 holds
//! every Q4_1 value almost exactly and runs on candle's AVX2/VNNI kernels, several times faster.

use std::fs::File;
use std::io::Cursor;
use std::path::Path;

use candle_core::Device;
use candle_core::quantized::gguf_file::Content;
use candle_core::quantized::{GgmlDType, QTensor};
use candle_transformers::models::quantized_llama::ModelWeights;

/// Reads the model file: its metadata (for the vocabulary) and the weights, re-quantized.
pub(super) fn load(path: &Path, device: &Device) -> Result<(Content, ModelWeights), String> {
    let mut file = File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let content = Content::read(&mut file)
        .map_err(|e| format!("{} is not a readable GGUF file: {e}", path.display()))?;
    let mut names: Vec<&String> = content.tensor_infos.keys().collect();
    names.sort();
    let mut tensors = Vec::with_capacity(names.len());
    for name in names {
        let tensor = content
            .tensor(&mut file, name, device)
            .and_then(|t| requantize(t, device))
            .map_err(|e| format!("reading tensor {name} failed: {e}"))?;
        tensors.push((name.as_str(), tensor));
    }
    let mut image = Cursor::new(Vec::new());
    let metadata: Vec<(&str, _)> = content
        .metadata
        .iter()
        .map(|(key, value)| (key.as_str(), value))
        .collect();
    let tensor_refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(n, t)| (*n, t)).collect();
    candle_core::quantized::gguf_file::write(&mut image, &metadata, &tensor_refs)
        .map_err(|e| format!("re-packing the weights failed: {e}"))?;
    drop(tensors);
    image.set_position(0);
    let repacked =
        Content::read(&mut image).map_err(|e| format!("re-reading the weights failed: {e}"))?;
    let model = ModelWeights::from_gguf(repacked, &mut image, device)
        .map_err(|e| format!("loading the weights failed: {e}"))?;
    Ok((content, model))
}

fn requantize(tensor: QTensor, device: &Device) -> candle_core::Result<QTensor> {
    if tensor.dtype() != GgmlDType::Q4_1 {
        return Ok(tensor);
    }
    QTensor::quantize(&tensor.dequantize(device)?, GgmlDType::Q8_0)
}
