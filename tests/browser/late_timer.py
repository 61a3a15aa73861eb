"""A relay on the socket between the browser and Streamlit, for a race a test cannot wait for: a fragment's timer
(a live section, an idle check) firing while a click switches pages. The test sends what that timer sends, as often
as it likes, and reads which pages the server ran after the switch."""

from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

FINISHED = 0  # ScriptFinishedStatus.FINISHED_SUCCESSFULLY: a whole page ran


class LateTimer:
    """Pass `route` to `page.route_web_socket("**/_stcore/stream", ...)` before the page is opened, and `arm()` once
    the page has rerun (its first run reports the hash of app.py, which picks the page). From then on `fire()` sends
    a rerun of every timed fragment the page registered, as the browser's timer would: the page's name and query
    from the browser's last rerun request, the fragment's ID, is_auto_rerun. `runs_after_switch` holds the page hash
    of each run the server started from the first run of another page on; `switched` says that run has finished.
    `disarm()` leaves it passing everything on again."""

    def __init__(self) -> None:
        self.runs_after_switch: list[str] = []
        self.switched = False
        self._timers: set[str] = set()
        self._late: list[bytes] = []
        self._page: str | None = None  # the hash of the page the server ran last
        self._armed_page: str | None = None
        self._last_rerun: BackMsg | None = None
        self._server = None

    def route(self, socket) -> None:
        self._server = socket.connect_to_server()
        socket.on_message(self._up)
        self._server.on_message(lambda message: self._down(message, socket))

    def arm(self) -> None:
        assert self._timers and self._last_rerun is not None, "no timed fragment or rerun seen yet"
        self._armed_page = self._page
        for fragment_id in self._timers:
            late = BackMsg()
            late.rerun_script.CopyFrom(self._last_rerun.rerun_script)
            late.rerun_script.fragment_id = fragment_id
            late.rerun_script.is_auto_rerun = True
            self._late.append(late.SerializeToString())

    def disarm(self) -> None:
        self._armed_page = None
        self._late.clear()
        self._timers.clear()
        self.runs_after_switch.clear()
        self.switched = False

    def fire(self) -> None:
        for message in self._late:
            self._server.send(message)

    def _up(self, message) -> None:
        if isinstance(message, bytes):
            back = BackMsg.FromString(message)
            if back.WhichOneof("type") == "rerun_script" and not back.rerun_script.fragment_id:
                self._last_rerun = back
        self._server.send(message)

    def _down(self, message, socket) -> None:
        if isinstance(message, bytes):
            forward = ForwardMsg.FromString(message)
            kind = forward.WhichOneof("type")
            if kind == "auto_rerun" and self._armed_page is None:
                self._timers.add(forward.auto_rerun.fragment_id)
            elif kind == "new_session":
                self._page = forward.new_session.page_script_hash
                if self.runs_after_switch or self._armed_page not in (None, self._page):
                    self.runs_after_switch.append(self._page)
            elif kind == "script_finished" and forward.script_finished == FINISHED and self.runs_after_switch:
                self.switched = True
        socket.send(message)
