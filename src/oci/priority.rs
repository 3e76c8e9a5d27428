//! Scheduling priority of the pull's own threads.

/// Moves the calling thread's `nice` value by `delta` (negative is more CPU), within the
/// kernel's range. Raising needs CAP_SYS_NICE (root has it); without it, or on any other
/// failure, the priority stays as it was.
pub(crate) fn shift_this_thread(delta: libc::c_int) {
    // SAFETY: plain syscalls about this thread only, and errno read right after the one call
    // whose -1 can be a value.
    unsafe {
        let tid = libc::gettid() as libc::id_t;
        *libc::__errno_location() = 0;
        let current = libc::getpriority(libc::PRIO_PROCESS, tid);
        if current == -1 && *libc::__errno_location() != 0 {
            return;
        }
        libc::setpriority(libc::PRIO_PROCESS, tid, (current + delta).clamp(-20, 19));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nice() -> libc::c_int {
        // SAFETY: reads this thread's priority only.
        unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) }
    }

    #[test]
    fn lowering_moves_only_the_calling_thread() {
        let before = nice();
        let lowered = std::thread::spawn(|| {
            let start = nice();
            shift_this_thread(3);
            nice() - start
        })
        .join()
        .unwrap();
        assert_eq!(lowered, 3.min(19 - before));
        assert_eq!(nice(), before);
    }
}
