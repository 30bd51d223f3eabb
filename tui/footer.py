"""The footer of key bindings, rebuilt only when the keys it shows change.

Textual's Footer rebuilds all its keys whenever the screen's bindings may have changed: each
focus change, each screen pushed or popped. Each key rebuilt is styled twice as it mounts, a
few milliseconds of the UI thread each, for a dozen keys. Most of those rebuilds show the very
same keys (moving between panes whose keys are the same, a screen that changes none); they
are skipped here, and the footer is rebuilt as before when anything it shows differs.
"""

from __future__ import annotations

from typing import Any

from textual.widgets import Footer as TextualFooter


class Footer(TextualFooter):
    _shown: Any = None  # what the footer was last composed from

    def _keys_shown(self) -> Any:
        """Everything Footer.compose reads to lay out its keys, in its order."""
        if not self._bindings_ready:
            return None
        app = self.app
        return (self.show_command_palette, app.ENABLE_COMMAND_PALETTE, app.COMMAND_PALETTE_BINDING,
                tuple((key, binding.key, app.get_key_display(binding), binding.description, binding.action,
                       binding.show, binding.group, binding.tooltip, enabled, tooltip)
                      for key, (_, binding, enabled, tooltip) in self.screen.active_bindings.items()))

    async def recompose(self) -> None:
        if not self.is_attached:
            return
        shown = self._keys_shown()
        if shown is not None and shown == self._shown:
            return
        self._shown = shown
        await super().recompose()
