//! Talking to systemd: sd_notify status lines, and power actions and login sessions over
//! D-Bus.

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};

/// Sends `STATUS=…` (and `READY=1` when `ready`) to the service manager, if there is one.
/// Failures are ignored: status reporting must never break an install.
pub fn notify_status(status: &str, ready: bool) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let path = path.to_string_lossy().into_owned();
    let addr = match path.strip_prefix('@') {
        Some(abstract_name) => SocketAddr::from_abstract_name(abstract_name.as_bytes()),
        None => SocketAddr::from_pathname(&path),
    };
    let Ok(addr) = addr else { return };
    let Ok(socket) = UnixDatagram::unbound() else {
        return;
    };
    let mut message = format!("STATUS={}", status.replace('\n', " "));
    if ready {
        message.push_str("\nREADY=1");
    }
    let _ = socket.send_to_addr(message.as_bytes(), &addr);
}

const SYSTEMD: &str = "org.freedesktop.systemd1";
const SYSTEMD_PATH: &str = "/org/freedesktop/systemd1";
const SYSTEMD_MANAGER: &str = "org.freedesktop.systemd1.Manager";
const LOGIN1: &str = "org.freedesktop.login1";
const LOGIN1_PATH: &str = "/org/freedesktop/login1";
const LOGIN1_MANAGER: &str = "org.freedesktop.login1.Manager";

/// Asks systemd to start `unit` (`reboot.target`, `poweroff.target`, `kexec.target`) the way
/// `systemctl reboot` does: an orderly shutdown that cannot be cancelled by a later job.
pub async fn start_power_unit(unit: &str) -> anyhow::Result<()> {
    let connection = zbus::Connection::system().await?;
    connection
        .call_method(
            Some(SYSTEMD),
            SYSTEMD_PATH,
            Some(SYSTEMD_MANAGER),
            "StartUnit",
            &(unit, "replace-irreversibly"),
        )
        .await
        .map_err(|e| anyhow::anyhow!("systemd refused to start {unit}: {e}"))?;
    Ok(())
}

/// Login sessions as (id, user, tty-or-seat) from logind.
pub async fn login_sessions() -> anyhow::Result<Vec<(String, String, String)>> {
    let connection = zbus::Connection::system().await?;
    let reply = connection
        .call_method(
            Some(LOGIN1),
            LOGIN1_PATH,
            Some(LOGIN1_MANAGER),
            "ListSessions",
            &(),
        )
        .await?;
    let sessions: Vec<(String, u32, String, String, zbus::zvariant::OwnedObjectPath)> =
        reply.body().deserialize()?;
    Ok(sessions
        .into_iter()
        .map(|(id, _uid, user, seat, _path)| (id, user, seat))
        .collect())
}

/// Waits until nobody is logged in (someone inspecting the machine on the console must not
/// have it rebooted under them), waking on logind's SessionRemoved signal.
pub async fn wait_for_logouts() -> anyhow::Result<()> {
    use futures_util::StreamExt;
    let connection = zbus::Connection::system().await?;
    let rule = zbus::MatchRule::builder()
        .msg_type(zbus::message::Type::Signal)
        .sender(LOGIN1)?
        .interface(LOGIN1_MANAGER)?
        .member("SessionRemoved")?
        .build();
    let mut removed = zbus::MessageStream::for_match_rule(rule, &connection, None).await?;
    loop {
        let sessions = login_sessions().await?;
        if sessions.is_empty() {
            return Ok(());
        }
        let who: Vec<String> = sessions.iter().map(|(_, user, _)| user.clone()).collect();
        tracing::info!(
            "waiting for {} to log out before the reboot",
            who.join(", ")
        );
        notify_status(&format!("waiting for {} to log out", who.join(", ")), true);
        if removed.next().await.is_none() {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_reaches_the_notify_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let receiver = UnixDatagram::bind(&path).unwrap();
        // No other test reads or writes NOTIFY_SOCKET.
        std::env::set_var("NOTIFY_SOCKET", &path);
        notify_status("wipe: /dev/sda", true);
        std::env::remove_var("NOTIFY_SOCKET");
        let mut buf = [0u8; 256];
        let n = receiver.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"STATUS=wipe: /dev/sda\nREADY=1");
    }
}
