//! ECR in moto, as the tests push to it: images with made-up but well-formed manifests, and the
//! push events EventBridge delivers for them. One copy, so every test pushes the same way and a
//! change in how moto stores images is fixed in one place.

use serde_json::{json, Value};

use crate::{for_world, sample_event, World};

/// A well-formed `sha256:` digest (64 hex digits) derived from `seed`: the same seed gives the
/// same digest, another seed another one. For manifests' config and layer digests, which moto
/// stores but never checks against any content.
pub fn fake_sha256(seed: &str) -> String {
    use std::hash::{Hash, Hasher};
    let hex: String = (0..4u8)
        .map(|i| {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            (seed, i).hash(&mut h);
            format!("{:016x}", h.finish())
        })
        .collect();
    format!("sha256:{hex}")
}

/// Put one manifest into the world's repository `repo`, under `tag` or untagged, with the
/// manifest's own `mediaType`; the digest moto gives it. moto derives an image's digest from its
/// layer digests only, and refuses a manifest it already holds under the same tag: give each
/// push its own layer digest.
pub async fn put_manifest(w: &World, repo: &str, tag: Option<&str>, manifest: &Value) -> String {
    let media_type = manifest["mediaType"].as_str().expect("the manifest names its mediaType");
    let out = aws_sdk_ecr::Client::new(&w.sdk)
        .put_image()
        .repository_name(repo)
        .image_manifest(manifest.to_string())
        .image_manifest_media_type(media_type)
        .set_image_tag(tag.map(String::from))
        .send()
        .await
        .unwrap_or_else(|e| panic!("put_image {repo}:{}: {e:?}", tag.unwrap_or("(untagged)")));
    out.image().and_then(|i| i.image_id()).and_then(|i| i.image_digest()).expect("put_image answers the digest").to_string()
}

/// Push `repo:tag` as a container image (a Docker schema 2 manifest with one layer) and return
/// its digest, as a CI pipeline's `docker push` would. `salt` tells builds apart: the same
/// `repo:tag` pushed again with another salt is a rebuild (a new digest); distinct `repo:tag`s
/// always get distinct digests.
pub async fn push_image(w: &World, repo: &str, tag: &str, salt: &str) -> String {
    let build = format!("{repo}:{tag}:{salt}");
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 7023, "digest": fake_sha256(&format!("config:{build}"))},
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": 1024, "digest": fake_sha256(&build)}],
    });
    put_manifest(w, repo, Some(tag), &manifest).await
}

/// The event EventBridge delivers for a successful push of `repo` at `digest`
/// (events/ecr-push-tagged.json, with a fresh id in the world's account), tagged `tag`, or an
/// untagged push (no `image-tag`) for `None`.
pub fn push_event(w: &World, repo: &str, tag: Option<&str>, digest: &str) -> Value {
    let mut e = for_world(sample_event("ecr-push-tagged.json"), w);
    e["detail"]["repository-name"] = json!(repo);
    e["detail"]["image-digest"] = json!(digest);
    match tag {
        Some(t) => e["detail"]["image-tag"] = json!(t),
        None => {
            e["detail"].as_object_mut().expect("detail is an object").remove("image-tag");
        }
    }
    e
}
