//! Campaigns: model-based action sequences against the target.
pub mod model;
