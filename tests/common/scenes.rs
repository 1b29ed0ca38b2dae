//! Scenes several test files set up alike.

use super::{Actor, Proxy, ProxyBuilder, RecordingUpstream, RemoteInstance};

/// A friend (`fay@friend.example`) and a spammer (`sam@spam.example`, suspended by the
/// blocklist `blocks.txt`), in front of a recording Mastodon. The remote servers live as
/// long as the scene: keep it, or its `friend` and `spam`, until the test ends.
pub struct FriendAndSpam {
    pub friend: RemoteInstance,
    pub spam: RemoteInstance,
    pub fay: Actor,
    pub sam: Actor,
    pub puma: RecordingUpstream,
    pub proxy: Proxy,
}

impl FriendAndSpam {
    /// `blocks` is `blocks.txt` (a plain list); `more` adds to the proxy's configuration.
    pub async fn start(blocks: &str, more: impl FnOnce(ProxyBuilder) -> ProxyBuilder) -> Self {
        let friend = RemoteInstance::start("friend.example").await;
        let spam = RemoteInstance::start("spam.example").await;
        let (fay, sam) = (friend.add_actor("fay"), spam.add_actor("sam"));
        let puma = RecordingUpstream::start().await;
        let builder = Proxy::builder(puma.addr())
            .remote(&friend)
            .remote(&spam)
            .blocklist_file("blocks.txt", blocks);
        let proxy = more(builder).start().await;
        proxy.wait_ready().await;
        FriendAndSpam {
            friend,
            spam,
            fay,
            sam,
            puma,
            proxy,
        }
    }
}
