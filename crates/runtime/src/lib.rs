//! amas-runtime
