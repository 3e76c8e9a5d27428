//! Many random layers made of hostile ingredients: whatever succeeds or fails, the outside of
//! the root never changes.

use tar::EntryType;

use crate::support::{Fixture, Layer, Meta};

/// xorshift64*: deterministic, so a failure reproduces from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }
}

fn random_path(rng: &mut Rng, outer: &str) -> String {
    const PARTS: &[&str] = &[
        "a",
        "b",
        "up",
        "abs",
        "sentinel",
        "victim",
        "etc",
        "passwd",
        ".",
        "link-to-sentinel",
    ];
    let depth = 1 + rng.next() % 3;
    let mut path = String::new();
    if rng.next() % 8 == 0 {
        path.push_str(outer);
        path.push('/');
    } else if rng.next() % 6 == 0 {
        path.push('/');
    }
    for i in 0..depth {
        if i > 0 {
            path.push('/');
        }
        path.push_str(rng.pick(PARTS));
    }
    path
}

fn random_layer(rng: &mut Rng, outer: &str) -> Vec<u8> {
    let targets = [
        "..",
        "../..",
        "../../..",
        "/",
        outer,
        "a",
        "/a/b",
        "../victim",
        "../sentinel",
        "up/up",
    ];
    let mut layer = Layer::new();
    for _ in 0..(1 + rng.next() % 12) {
        let path = random_path(rng, outer);
        let meta =
            Meta::mode((rng.next() % 0o7777) as u32).owner(rng.next() % 3000, rng.next() % 3000);
        layer = match rng.next() % 9 {
            0 | 1 => layer.file_with(&path, b"pwned", meta),
            2 => layer.dir_with(&path, meta),
            3 | 4 => layer.symlink(&path, rng.pick(&targets)),
            5 => layer.hardlink(&path, &random_path(rng, outer)),
            6 => layer.whiteout(&path),
            7 => layer.opaque(&path),
            _ => layer.member(EntryType::Fifo, path.as_bytes(), None, b"", meta),
        };
    }
    layer.build()
}

#[test]
fn random_hostile_layers_never_touch_the_outside() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (mut ok, mut failed) = (0, 0);
    for round in 0..100 {
        let fx = Fixture::new();
        let outer = fx.outer.path().to_str().unwrap().to_owned();
        let mut applier = ocimetal::oci::apply::Applier::open(&fx.root).unwrap();
        for layer_number in 0..10 {
            let layer = random_layer(&mut rng, &outer);
            match applier.apply_layer(&mut layer.as_slice()) {
                Ok(_) => ok += 1,
                Err(_) => failed += 1,
            }
            fx.assert_outer_unchanged_after(&format!("round {round} layer {layer_number}"));
        }
    }
    eprintln!("{ok} layers applied, {failed} failed");
    // Both outcomes must be exercised for the test to mean something.
    assert!(ok > 100 && failed > 100, "ok {ok}, failed {failed}");
}
