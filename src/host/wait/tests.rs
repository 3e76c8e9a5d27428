//! Waiting on the host: files and directories made by another thread, a timeout, and the
//! partitions of a loop device.

use super::*;
use std::process::Command;
use std::thread;

/// Runs `make` on another thread after a short pause, so that the wait has to block for it.
fn later(make: impl FnOnce() + Send + 'static) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        thread::sleep(Duration::from_millis(100));
        make();
    })
}

#[test]
fn returns_at_once_for_an_existing_path() {
    let dir = tempfile::tempdir().unwrap();
    wait_for_device(dir.path(), Duration::ZERO).unwrap();
}

#[test]
fn wakes_when_missing_parent_directories_and_file_appear() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("disk/by-label/EFI");
    let parent = dir.path().join("disk/by-label");
    let maker = later({
        let target = target.clone();
        move || {
            fs::create_dir(parent.parent().unwrap()).unwrap();
            fs::create_dir(&parent).unwrap();
            fs::write(&target, "").unwrap();
        }
    });
    wait_for_device_with(&target, Duration::from_secs(20), None).unwrap();
    assert!(target.exists());
    maker.join().unwrap();
}

#[test]
fn waits_for_a_dangling_link_to_resolve() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("by-label/ROOTFS");
    let node = dir.path().join("nodes/md0");
    fs::create_dir(dir.path().join("by-label")).unwrap();
    std::os::unix::fs::symlink("../nodes/md0", &link).unwrap();
    let maker = later({
        let node = node.clone();
        move || {
            fs::create_dir(node.parent().unwrap()).unwrap();
            fs::write(&node, "").unwrap();
        }
    });
    wait_for_device_with(&link, Duration::from_secs(20), None).unwrap();
    assert!(node.exists(), "returned before the link target existed");
    maker.join().unwrap();
}

#[test]
fn times_out_naming_path_and_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("sdz9");
    let err = wait_for_device_with(&missing, Duration::from_millis(200), None).unwrap_err();
    let message = format!("{err:#}");
    assert!(message.contains("200ms"), "{message}");
    assert!(
        message.contains(&missing.display().to_string()),
        "{message}"
    );
    assert!(message.contains("does not exist"), "{message}");
}

/// A loop device over a sparse image, detached on drop.
struct LoopDevice {
    path: PathBuf,
}

impl LoopDevice {
    fn attach(image: &Path) -> Result<Self, String> {
        let output = Command::new("losetup")
            .args(["-fP", "--show"])
            .arg(image)
            .output()
            .map_err(|err| format!("cannot run losetup: {err}"))?;
        if !output.status.success() {
            return Err(format!(
                "losetup failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
        let path = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        Ok(Self { path: path.into() })
    }

    fn partition(&self, number: u32) -> PathBuf {
        PathBuf::from(format!("{}p{number}", self.path.display()))
    }
}

impl Drop for LoopDevice {
    fn drop(&mut self) {
        let _ = Command::new("losetup").arg("-d").arg(&self.path).status();
    }
}

fn sgdisk(target: &Path, args: &[&str]) -> bool {
    Command::new("sgdisk")
        .args(args)
        .arg(target)
        .output()
        .map(|output| output.status.success())
        .unwrap_or(false)
}

/// Tells the kernel about the partitions in `disk`'s table.
fn update_partitions(disk: &Path) -> bool {
    Command::new("partx")
        .arg("-u")
        .arg(disk)
        .status()
        .map(|status| status.success())
        .unwrap_or(false)
}

#[test]
fn loop_device_partitions_and_udev_entries_are_awaited() {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("disk.img");
    fs::File::create(&image)
        .unwrap()
        .set_len(64 * 1024 * 1024)
        .unwrap();
    if !sgdisk(&image, &["-n", "1:2048:+8M", "-n", "2:0:+8M"]) {
        println!("skipped: sgdisk cannot partition {}", image.display());
        return;
    }
    let device = match LoopDevice::attach(&image) {
        Ok(device) => device,
        Err(reason) => {
            println!("skipped: {reason}");
            return;
        }
    };

    // The partitions appear while we wait: the kernel creates their nodes when told about
    // them (partx also covers kernels built without a GPT parser, which never scan).
    let scanner = thread::spawn({
        let disk = device.path.clone();
        move || {
            thread::sleep(Duration::from_millis(100));
            update_partitions(&disk)
        }
    });
    for number in [1, 2] {
        wait_for_device_with(&device.partition(number), Duration::from_secs(20), None).unwrap();
    }
    assert!(scanner.join().unwrap(), "partx failed");

    // A partition added later.
    let third = device.partition(3);
    assert!(!third.exists());
    let adder = thread::spawn({
        let disk = device.path.clone();
        move || {
            thread::sleep(Duration::from_millis(100));
            sgdisk(&disk, &["-n", "3:0:+8M"]) && update_partitions(&disk)
        }
    });
    wait_for_device_with(&third, Duration::from_secs(20), None).unwrap();
    assert!(adder.join().unwrap(), "adding partition 3 failed");
    assert!(fs::metadata(&third).unwrap().file_type().is_block_device());

    // The node exists, but a udev database without its entry keeps us waiting.
    let udev_data = dir.path().join("udev-data");
    fs::create_dir(&udev_data).unwrap();
    let second = device.partition(2);
    let err =
        wait_for_device_with(&second, Duration::from_millis(200), Some(&udev_data)).unwrap_err();
    assert!(
        format!("{err:#}").contains("udev has not finished"),
        "{err:#}"
    );

    // udev writes its entry under a temporary name and renames it into place.
    let rdev = fs::metadata(&second).unwrap().rdev();
    let entry = udev_data.join(format!("b{}:{}", libc::major(rdev), libc::minor(rdev)));
    let writer = later({
        let udev_data = udev_data.clone();
        let entry = entry.clone();
        move || {
            let temp = udev_data.join(".#tmp");
            fs::write(&temp, "E:ID_FS_TYPE=ext4\n").unwrap();
            fs::rename(&temp, &entry).unwrap();
        }
    });
    wait_for_device_with(&second, Duration::from_secs(20), Some(&udev_data)).unwrap();
    assert!(entry.exists());
    writer.join().unwrap();
}
