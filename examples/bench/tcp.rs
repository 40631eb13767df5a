//! What the two baselines share: plain TCP connections on 127.0.0.1 with
//! `TCP_NODELAY` (as internode's), whose first byte tells the server what to do with
//! the frames that follow: count them ([`Mode::Sink`]) or send each back
//! ([`Mode::Echo`]). How frames are written and read is each baseline's own.

use std::future::Future;
use std::rc::Rc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::payload::Sink;
use crate::BenchError;

/// What the server does with a connection's frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Give each payload to the [`Sink`].
    Sink,
    /// Send each frame back as it came.
    Echo,
}

impl Mode {
    fn byte(self) -> u8 {
        match self {
            Mode::Sink => b'S',
            Mode::Echo => b'E',
        }
    }

    fn from_byte(byte: u8) -> Option<Mode> {
        match byte {
            b'S' => Some(Mode::Sink),
            b'E' => Some(Mode::Echo),
            _ => None,
        }
    }
}

/// Connects to a server of this benchmark on 127.0.0.1 and says what the connection
/// is for.
pub async fn connect(port: u16, mode: Mode) -> Result<TcpStream, BenchError> {
    let io = |e| BenchError::io(format!("connecting to 127.0.0.1:{port}"), e);
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.map_err(io)?;
    stream.set_nodelay(true).map_err(io)?;
    stream.write_all(&[mode.byte()]).await.map_err(io)?;
    Ok(stream)
}

/// Listens on a free port of 127.0.0.1 and serves each connection on its own task
/// with `serve`; an error on a connection is reported to `sink` (so the next
/// measurement fails). Returns the port.
pub async fn listen<F, Fut>(sink: Rc<Sink>, serve: F) -> Result<u16, BenchError>
where
    F: Fn(TcpStream, Mode, Rc<Sink>) -> Fut + 'static,
    Fut: Future<Output = Result<(), BenchError>> + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| BenchError::io("binding 127.0.0.1:0", e))?;
    let port = listener
        .local_addr()
        .map_err(|e| BenchError::io("local_addr", e))?
        .port();
    let serve = Rc::new(serve);
    actix::spawn(async move {
        loop {
            let mut stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(e) => {
                    sink.fail(format!("accept on port {port}: {e}"));
                    return;
                }
            };
            let _ = stream.set_nodelay(true);
            let (connection_sink, serve) = (sink.clone(), serve.clone());
            let connection = async move {
                let byte = stream
                    .read_u8()
                    .await
                    .map_err(|e| BenchError::io("reading the connection's mode", e))?;
                let mode = Mode::from_byte(byte)
                    .ok_or_else(|| BenchError::Failed(format!("unknown mode byte {byte}")))?;
                serve(stream, mode, connection_sink).await
            };
            let sink = sink.clone();
            actix::spawn(async move {
                if let Err(e) = connection.await {
                    sink.fail(e.to_string());
                }
            });
        }
    });
    Ok(port)
}
