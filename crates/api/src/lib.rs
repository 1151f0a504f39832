//! amas-api
