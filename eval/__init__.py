"""savg.eval"""
