//! IPA-compatible root-device hints (oslo.utils specs_matcher semantics).
