//! [`Shared`]: in-memory state that several services of the coordinator use (the node
//! registry, the maintenance bookkeeping), each holding a clone of the handle.
//!
//! Why a wrapper rather than `Arc<Mutex<T>>` everywhere: one place says what happens to a
//! poisoned lock. The state behind these locks holds no invariant that a holder panicking
//! half way could break in a way that matters more than staying available, so a poisoned
//! lock is used as is rather than turning every later request into a panic.
//!
//! The rule every caller keeps: a guard is never held across an `.await`, and the registry
//! and maintenance locks are never held together, so there is no lock order to get wrong.

use std::sync::{Arc, Mutex, MutexGuard};

pub(crate) struct Shared<T>(Arc<Mutex<T>>);

impl<T> Shared<T> {
    pub fn new(value: T) -> Shared<T> {
        Shared(Arc::new(Mutex::new(value)))
    }

    pub fn lock(&self) -> MutexGuard<'_, T> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl<T> Clone for Shared<T> {
    fn clone(&self) -> Self {
        Shared(self.0.clone())
    }
}
