//! End-to-end tests of scssl live in `tests/tests/`; this library is empty.
