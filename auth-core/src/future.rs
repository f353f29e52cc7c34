//! [`MaybeReady`]: the future returned by resolvers and by the store lookups on the
//! request path.
//!
//! Most credentials are decided without waiting: a static token, an internal secret, a
//! session or API key in the in-process store. Returning a boxed future (what
//! `async_trait` generates) from those would cost an allocation and a copy of the
//! future's state on every request, more than the rest of the resolution. So
//! [`Resolver::resolve`](crate::chain::Resolver::resolve) and the lookups it makes
//! ([`SessionStore::session_by_digest`](crate::session::SessionStore::session_by_digest),
//! [`ApiKeyStore::api_key`](crate::api_key::ApiKeyStore::api_key)) return a
//! [`MaybeReady`]: either a value that is already there ([`MaybeReady::ready`], no
//! allocation) or a boxed future for work that really waits ([`MaybeReady::boxed`]: a
//! database query, a JWKS fetch), exactly what `async_trait` would have produced.
//!
//! ```
//! use auth_core::MaybeReady;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let now = MaybeReady::ready(2).map(|n| n * 21);
//! assert!(now.is_ready());
//! let later = MaybeReady::boxed(async { 2 }).map(|n| n * 21);
//! assert!(!later.is_ready());
//! assert_eq!(now.await, later.await);
//! # }
//! ```

use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};

/// A boxed, `Send` future borrowing from `'a`.
type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A future that is either already complete or a boxed future.
///
/// Build it with [`MaybeReady::ready`] when the value is known without waiting and with
/// [`MaybeReady::boxed`] otherwise; chain a further step with [`MaybeReady::map`] or
/// [`MaybeReady::then`], which stay allocation-free when the first step was ready.
/// `Debug` prints only which of the two it is, never the value.
#[must_use = "futures do nothing unless awaited"]
pub struct MaybeReady<'a, T>(Repr<'a, T>);

enum Repr<'a, T> {
    Ready(core::future::Ready<T>),
    Boxed(BoxFuture<'a, T>),
}

impl<'a, T> MaybeReady<'a, T> {
    /// A future that completes with `value` on its first poll, without allocating.
    pub fn ready(value: T) -> Self {
        Self(Repr::Ready(core::future::ready(value)))
    }

    /// A future that really waits (I/O), boxed.
    pub fn boxed(future: impl Future<Output = T> + Send + 'a) -> Self {
        Self(Repr::Boxed(Box::pin(future)))
    }

    /// Whether this was built with [`MaybeReady::ready`] (so awaiting it never waits and
    /// never allocated).
    #[must_use]
    pub fn is_ready(&self) -> bool {
        matches!(self.0, Repr::Ready(_))
    }

    /// Applies `f` to the output. Ready stays ready; a boxed future is boxed again with
    /// `f` after it.
    ///
    /// # Panics
    ///
    /// Like polling a future again after it completed: if this future was already
    /// awaited to completion.
    pub fn map<U>(self, f: impl FnOnce(T) -> U + Send + 'a) -> MaybeReady<'a, U>
    where
        T: 'a,
    {
        match self.0 {
            Repr::Ready(ready) => MaybeReady::ready(f(ready.into_inner())),
            Repr::Boxed(future) => MaybeReady::boxed(async move { f(future.await) }),
        }
    }

    /// Continues with the future `f` makes from the output. When this future is ready,
    /// the result is whatever `f` returns (ready or boxed); otherwise both steps run in
    /// one boxed future.
    ///
    /// # Panics
    ///
    /// Like polling a future again after it completed: if this future was already
    /// awaited to completion.
    pub fn then<U: Send + 'a>(
        self,
        f: impl FnOnce(T) -> MaybeReady<'a, U> + Send + 'a,
    ) -> MaybeReady<'a, U>
    where
        T: 'a,
    {
        match self.0 {
            Repr::Ready(ready) => f(ready.into_inner()),
            Repr::Boxed(future) => MaybeReady::boxed(async move { f(future.await).await }),
        }
    }
}

impl<T> Future for MaybeReady<'_, T> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        // Both representations are `Unpin` (`Ready` holds an `Option`, the box is
        // pinned on the heap), so `MaybeReady` is `Unpin` and no pin projection is
        // needed.
        match &mut self.get_mut().0 {
            Repr::Ready(ready) => Pin::new(ready).poll(cx),
            Repr::Boxed(future) => future.as_mut().poll(cx),
        }
    }
}

impl<T> fmt::Debug for MaybeReady<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.0 {
            Repr::Ready(_) => "ready",
            Repr::Boxed(_) => "boxed",
        };
        f.debug_tuple("MaybeReady").field(&state).finish()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Waker;

    use super::*;

    /// Polls once with a no-op waker.
    fn poll_once<F: Future + Unpin>(f: &mut F) -> Poll<F::Output> {
        Pin::new(f).poll(&mut Context::from_waker(Waker::noop()))
    }

    /// A future that is pending on its first poll and ready with `value` on the second.
    fn pending_once<T: Send>(value: T) -> impl Future<Output = T> + Send {
        let mut polled = false;
        let mut value = Some(value);
        core::future::poll_fn(move |cx| {
            if polled {
                Poll::Ready(
                    value
                        .take()
                        .unwrap_or_else(|| panic!("polled after completion")),
                )
            } else {
                polled = true;
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        })
    }

    #[test]
    fn ready_completes_on_the_first_poll() {
        let mut f = MaybeReady::ready(7);
        assert!(f.is_ready());
        assert_eq!(poll_once(&mut f), Poll::Ready(7));
    }

    #[test]
    fn boxed_waits_like_the_future_it_holds() {
        let mut f = MaybeReady::boxed(pending_once(7));
        assert!(!f.is_ready());
        assert_eq!(poll_once(&mut f), Poll::Pending);
        assert_eq!(poll_once(&mut f), Poll::Ready(7));
    }

    #[test]
    fn map_keeps_ready_ready_and_runs_after_a_boxed_future() {
        let mut f = MaybeReady::ready(20).map(|n| n + 1);
        assert!(f.is_ready());
        assert_eq!(poll_once(&mut f), Poll::Ready(21));

        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        let mut f = MaybeReady::boxed(pending_once(20)).map(move |n| {
            c.fetch_add(1, Ordering::SeqCst);
            n + 1
        });
        assert!(!f.is_ready());
        assert_eq!(poll_once(&mut f), Poll::Pending);
        assert_eq!(
            calls.load(Ordering::SeqCst),
            0,
            "f ran before the value existed"
        );
        assert_eq!(poll_once(&mut f), Poll::Ready(21));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn then_returns_the_second_step_as_is_after_a_ready_first_step() {
        let f = MaybeReady::ready(1).then(|n| MaybeReady::ready(n * 10));
        assert!(f.is_ready());
        let mut g = MaybeReady::ready(1).then(|n| MaybeReady::boxed(pending_once(n * 10)));
        assert!(!g.is_ready());
        assert_eq!(poll_once(&mut g), Poll::Pending);
        assert_eq!(poll_once(&mut g), Poll::Ready(10));
    }

    #[test]
    fn then_after_a_boxed_first_step_waits_for_both() {
        let mut f =
            MaybeReady::boxed(pending_once(1)).then(|n| MaybeReady::boxed(pending_once(n * 10)));
        assert_eq!(poll_once(&mut f), Poll::Pending);
        assert_eq!(poll_once(&mut f), Poll::Pending);
        assert_eq!(poll_once(&mut f), Poll::Ready(10));
    }

    #[test]
    fn debug_names_the_state_not_the_value() {
        let s = format!("{:?}", MaybeReady::ready("canary-value"));
        assert_eq!(s, r#"MaybeReady("ready")"#);
        let s = format!("{:?}", MaybeReady::boxed(async { "canary-value" }));
        assert_eq!(s, r#"MaybeReady("boxed")"#);
    }
}
