"""Canvas tools: the AI prompt tool, the polygon tool and the brush / eraser."""
