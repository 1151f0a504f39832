//! amas-governance
