//! amas-test-util
